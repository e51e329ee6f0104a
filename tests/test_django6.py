"""End to end: a release that needs Django 6 (release G: A's app with `Django>=6.0,<7`) deploys on
Debian 13 (Python 3.13), and its plan against a Debian 12 host (Python 3.11) is blocked with one line
naming the host, its Python and what the requirements need — nothing changes on that host."""

from __future__ import annotations

import pytest

from conftest import http_get

pytestmark = pytest.mark.sandbox

BLOCKED_LINE = ("{host}: Python 3.11 is too old for this release's requirements (Django>=6.0,<7 needs Python "
                ">= 3.12): use Debian 13 or pin Django < 6")
# What a deploy leaves on a host (the warm image has the packages already; this is the rest).
TRACES = ("test -e /srv/agroguia || test -e /etc/pinned/agroguia || test -e /etc/nginx/conf.d/pinned-agroguia.conf"
          " || id agroguia >/dev/null 2>&1 || test -n \"$(mysql -N -B -e \"SHOW DATABASES LIKE 'agroguia%'\")\""
          " && echo changed || echo untouched")


def test_a_django_6_release_deploys_on_debian_13(sandbox, commits, make_env):
    host = sandbox.host("dj6", suite="trixie")
    env = make_env("dj6", ["dj6"], release=commits["G"]["commit"])
    env.deploy()
    page = http_get(f"http://{host.address}/")
    assert page.status == 200 and "Release: G" in page.body and "<li>Tomato</li>" in page.body
    visit = http_get(f"http://{host.address}/visit/")  # a read that writes its session: the database works
    assert visit.status == 200 and visit.headers.get("X-Release") == "G", visit
    versions = sandbox.ssh("dj6", "/srv/agroguia/current/.venv/bin/python -c "
                                  "'import django, sys; print(django.__version__, sys.version.split()[0])'").stdout
    django, python = versions.split()
    assert django.startswith("6.") and python.startswith("3.13.")
    assert "No changes." in env.pyinfra("--dry").stdout


def test_a_django_6_release_is_blocked_on_debian_12(sandbox, commits, make_env):
    sandbox.host("dj6old", suite="bookworm")
    assert sandbox.ssh("dj6old", "python3 -V").stdout.startswith("Python 3.11.")
    assert sandbox.ssh("dj6old", TRACES).stdout.strip() == "untouched"
    env = make_env("dj6old", ["dj6old"], release=commits["G"]["commit"])
    line = BLOCKED_LINE.format(host="dj6old")

    plan = env.pinned("plan", check=False)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert f"  x {line}" in plan.stdout.splitlines()  # one line of the BLOCKED block
    assert plan.stdout.count(line) == 1 and "Plan blocked" in plan.stdout and "No changes" not in plan.stdout

    deploy = env.deploy(check=False)
    out = deploy.stdout + deploy.stderr
    assert deploy.returncode == 1 and line in out, out[-3000:]
    assert "Traceback" not in out and "No matching distribution" not in out
    assert sandbox.ssh("dj6old", TRACES).stdout.strip() == "untouched"

    # Pinned to release A (Django 5.2) the same host plans changes: the check blocks only what cannot run
    # there (that A deploys on Debian 12 the bare-image test shows).
    env.write(release=commits["A"]["commit"])
    plan_a = env.pinned("plan", "--detailed-exitcode", check=False)
    assert plan_a.returncode == 2 and "is too old" not in plan_a.stdout, plan_a.stdout + plan_a.stderr
