"""pinned's runtime inside a release (uploaded beside pinned_settings.py, which enables it).

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
    if request is None:
        return
    code = database_error_code(sys.exc_info()[1])
    if code in REFUSED or (code in ENDED and frozen()):
        request._pinned_write_refused = True


got_request_exception.connect(_note_refused_write, dispatch_uid="pinned_write_freeze")


def refused_write(request, response) -> bool:
    """A database error of a refused write (noted by the signal), or — Django's own answer when saving the
    session fails (SessionInterrupted: 400, and no signal) — a 400 for a request whose session changed."""
    if response.status_code >= 500 and getattr(request, "_pinned_write_refused", False):
        return True
    session = getattr(request, "session", None)
    return response.status_code == 400 and bool(getattr(session, "modified", False)) and frozen()


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
