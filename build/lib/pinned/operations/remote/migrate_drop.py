# After a failed migration: drop the release's (new) schema version's database. Unlike the other Python
# scripts here, it runs with the release's own virtualenv (Django), as the app user: migrate.sh runs it as
# `.venv/bin/python -c TEXT` in the release's folder.
import django

django.setup()
from django.db import connection  # noqa: E402 (only once django.setup() has run)

connection.cursor().execute("DROP DATABASE `%s`" % connection.settings_dict["NAME"])
