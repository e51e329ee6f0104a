"""templates/pinned_runtime.py inside a real Django request cycle: a write the database refuses becomes
503 + Retry-After, whether it fails in a view (500) or in the session's save (Django's own 400), frozen
marker or not; anything else passes unchanged."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import django
import pymysql
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieStore
from django.db import OperationalError
from django.http import HttpResponse
from django.urls import path

ROOT = Path(__file__).resolve().parent.parent


def refused_database_write():
    """What Django raises for a write the guard refused: its OperationalError around PyMySQL's 1142."""
    try:
        raise pymysql.err.OperationalError(1142, "UPDATE command denied to user 'app'")
    except pymysql.err.OperationalError as exc:
        raise OperationalError(*exc.args) from exc


class GuardedSessionStore(CookieStore):
    """A session whose update the database refuses, as django.contrib.sessions.backends.db does it
    (DatabaseError → UpdateError → SessionInterrupted, 400)."""
    def save(self, must_create=False):
        try:
            refused_database_write()
        except OperationalError:
            raise UpdateError


class SessionStore(GuardedSessionStore):
    pass


def view_writes(request):
    refused_database_write()


def view_touches_session(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse("ok")


def view_fails_otherwise(request):
    raise ValueError("a bug, not a refused write")


def view_bad_request(request):
    return HttpResponse("bad", status=400)


urlpatterns = [path("write/", view_writes), path("visit/", view_touches_session),
               path("bug/", view_fails_otherwise), path("bad/", view_bad_request)]


def setup_module():
    spec = importlib.util.spec_from_file_location("pinned_runtime", ROOT / "templates" / "pinned_runtime.py")
    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__, SECRET_KEY="x" * 50,
            SESSION_ENGINE=__name__, DATABASES={},
            MIDDLEWARE=["pinned_runtime.WriteFreezeMiddleware",
                        "django.contrib.sessions.middleware.SessionMiddleware"],
            INSTALLED_APPS=["django.contrib.sessions"], PINNED_FREEZE_MARKER="/nonexistent/marker",
            PINNED_FROZEN_MESSAGE="Back in a moment.", LOGGING_CONFIG=None,
        )
        django.setup()
    module = importlib.util.module_from_spec(spec)
    sys.modules["pinned_runtime"] = module
    spec.loader.exec_module(module)


def get(url):
    from django.test import Client
    return Client(raise_request_exception=False).get(url)


def test_refused_write_in_a_view_is_503_with_retry_after():
    response = get("/write/")
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.content.decode() == "Back in a moment.\n"


def test_refused_session_save_is_503_even_after_the_marker_is_gone():
    # The marker does not exist here: a request still running on the old release after the thaw.
    response = get("/visit/")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "10"


def test_other_errors_pass_unchanged():
    assert get("/bug/").status_code == 500
    bad = get("/bad/")
    assert bad.status_code == 400 and bad.content == b"bad"


def test_databases_and_connections_agree_on_one_collation():
    from pinned.state.model import DATABASE_COLLATION

    script = (ROOT / "operations" / "remote" / "copy_database.sh").read_text()
    assert f"CHARACTER SET utf8mb4 COLLATE {DATABASE_COLLATION}" in script
    template = (ROOT / "templates" / "settings.py.j2").read_text()
    assert '"collation": {{ collation | tojson }}' in template


def test_the_default_wsgi_entry_is_the_one_the_settings_name(monkeypatch):
    # `pinned_runtime:application` resolves settings.WSGI_APPLICATION as Django's runserver does.
    marker = object()
    module = sys.modules["pinned_runtime"]
    monkeypatch.setattr(settings, "WSGI_APPLICATION", f"{__name__}.PROJECT_APPLICATION", raising=False)
    globals()["PROJECT_APPLICATION"] = marker
    module.__dict__.pop("application", None)
    assert module.application is marker
