"""pinned's runtime inside a release (uploaded beside pinned_settings.py, which enables it).

`application` (gunicorn's default entry point, `pinned_runtime:application`): the project's WSGI application
as Django's runserver finds it — the one its settings name in WSGI_APPLICATION, else Django's default
handler — so a settings package (`config.settings.production`) needs no `django.wsgi`.

WriteFreezeMiddleware: while a schema change's write freeze is on, the app's database account may only
read the old database. A request that writes anyway — a GET saving its session, a view writing on a read
— fails in the database; this turns that failure into 503 with Retry-After (the answer nginx gives the
writes it refuses), never a bare 500. It must be the outermost middleware: it sees every other layer's
response, and the database error is recorded by Django's got_request_exception signal.
"""

import os
import sys

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpResponse

# MariaDB/MySQL error codes: a write refused by privileges or read-only state, a connection ended.
REFUSED = {1142, 1143, 1044, 1036, 1290, 1792}
ENDED = {2006, 2013}
RETRY_AFTER = "10"


def frozen() -> bool:
    marker = getattr(settings, "PINNED_FREEZE_MARKER", "")
    return bool(marker) and os.path.exists(marker)


def database_error_code(exc):
    """The MariaDB error code behind an exception (Django wraps PyMySQL's), or None."""
    seen = 0
    while exc is not None and seen < 10:
        args = getattr(exc, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _note_refused_write(sender, request=None, **kwargs):
    if request is not None:
        _note_if_refused(request, sys.exc_info()[1])


got_request_exception.connect(_note_refused_write, dispatch_uid="pinned_write_freeze")


def _note_if_refused(request, exc) -> None:
    code = database_error_code(exc)
    if code in REFUSED or (code in ENDED and frozen()):
        request._pinned_write_refused = True


def refused_write(request, response) -> bool:
    """A database error of a refused write: noted by the signal (a 500), or by the session's save (Django
    answers a failed session save with 400, SessionInterrupted, and sends no signal)."""
    return response.status_code in (400, 500, 502, 503) and getattr(request, "_pinned_write_refused", False)


def __getattr__(name):
    if name == "application":  # loaded by gunicorn, once per worker, after DJANGO_SETTINGS_MODULE is set
        from django.core.servers.basehttp import get_internal_wsgi_application

        global application
        application = get_internal_wsgi_application()
        return application
    raise AttributeError(name)


class WriteFreezeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if refused_write(request, response):
            message = getattr(settings, "PINNED_FROZEN_MESSAGE", "This site is being updated. Please retry.")
            refused = HttpResponse(message + "\n", status=503, content_type="text/plain; charset=utf-8")
            refused["Retry-After"] = RETRY_AFTER
            refused["Cache-Control"] = "no-store"
            return refused
        return response

    def process_view(self, request, view, args, kwargs):
        """Note a session save the database refused (the session exists from here on). Deciding by the error
        itself, not by the freeze marker: a request still in flight on the old release after the thaw
        (marker gone) may meet the old database's guard."""
        session = getattr(request, "session", None)
        if session is None or getattr(session, "_pinned_noting", False):
            return None
        save = session.save

        def save_noting_refusal(*a, **kw):
            try:
                return save(*a, **kw)
            except Exception as exc:
                _note_if_refused(request, exc)
                raise

        session.save, session._pinned_noting = save_noting_refusal, True
        return None
