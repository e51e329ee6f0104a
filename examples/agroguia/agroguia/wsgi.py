"""WSGI config for the agroguia project: exposes ``application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agroguia.settings")

application = get_wsgi_application()
