"""End to end: the pinned release online on a sandbox host, checked as a user sees it."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from conftest import ROOT, http_get

pytestmark = pytest.mark.sandbox
HOST = "first"


@pytest.fixture(scope="module")
def deployed(sandbox, commits, tmp_path_factory):
    from conftest import Env

    host = sandbox.host(HOST)
    env = Env("first", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    first = env.deploy("-vv")
    second = env.deploy()
    return host, env, first, second


def release_id(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def test_site_shows_rows_from_the_database(deployed):
    host, *_ = deployed
    page = http_get(f"http://{host.address}/")
    assert page.status == 200
    assert "Release: A" in page.body
    assert re.findall(r"<li>(\w+)</li>", page.body) == ["Olive", "Tomato", "Wheat"]


def test_rows_are_in_the_schema_database(deployed, sandbox):
    host, *_ = deployed
    out = sandbox.ssh(HOST, "mysql -N -B -e 'SELECT name FROM agroguia_v0.crops_crop ORDER BY name'").stdout
    assert out.split() == ["Olive", "Tomato", "Wheat"]


def test_css_is_served_by_nginx_from_current_assets(deployed, sandbox):
    host, *_ = deployed
    css = http_get(f"http://{host.address}/static/crops/style.css")
    assert css.status == 200
    assert css.headers["Server"].startswith("nginx")
    # Django's SecurityMiddleware would add these to anything it served.
    assert "X-Frame-Options" not in css.headers and "X-Content-Type-Options" not in css.headers
    assert css.headers.get("ETag")
    on_disk = sandbox.ssh(HOST, "cat /srv/agroguia/current/assets/crops/style.css").stdout
    assert css.body == on_disk
    page = http_get(f"http://{host.address}/")
    assert page.headers.get("X-Frame-Options") == "DENY"  # the page itself did come from Django


def test_release_tree_and_links(deployed, sandbox, commits):
    rid = release_id(commits, "A")
    assert re.fullmatch(r"20261120T100000-[0-9a-f]{12}", rid)  # commit time, then the commit (no hash written here)
    links = sandbox.ssh(HOST, "readlink /srv/agroguia/current; readlink /srv/agroguia/versions/0/last").stdout
    assert links.split() == [f"versions/0/{rid}", rid]
    # The app user cannot write its own code.
    denied = sandbox.ssh(HOST, "runuser -u agroguia -- touch /srv/agroguia/current/manage.py", check=False)
    assert denied.returncode != 0
    owner = sandbox.ssh(HOST, "stat -c '%U:%G %a' /srv/agroguia /srv/agroguia/current/").stdout.split("\n")
    assert owner[0] == "root:root 755"


def test_release_id_is_commit_time_and_hash(deployed, sandbox, commits):
    commit = commits["A"]["commit"]
    stamp = subprocess.run(["git", "-C", str(ROOT / ".build/agroguia"), "show", "-s", "--format=%ct", commit],
                           capture_output=True, text=True, check=True).stdout.strip()
    expected = time.strftime("%Y%m%dT%H%M%S", time.gmtime(int(stamp))) + "-" + commit[:12]
    listed = sandbox.ssh(HOST, "ls /srv/agroguia/versions/0").stdout.split()
    assert listed == [expected, "last", "schema.json", "served"]


def test_second_run_changes_nothing(deployed):
    *_, second = deployed
    assert "No changes. Hosts match" in second.stdout
    # pyinfra ran no operation at all, so none changed anything.
    output = second.stdout + second.stderr
    assert re.search(r"Grand total\s+-\s+-\s+-\s+-", output), output[-2000:]


def test_services_are_hardened_and_socket_activated(deployed, sandbox, commits):
    rid = release_id(commits, "A")
    show = sandbox.ssh(HOST, f"systemctl show agroguia@{rid}.service -p User,NoNewPrivileges,ProtectSystem,"
                             f"ActiveState; systemctl is-active agroguia@{rid}.socket").stdout
    assert "User=agroguia" in show and "NoNewPrivileges=yes" in show and "ProtectSystem=strict" in show
    assert "ActiveState=active" in show and show.strip().endswith("active")


def test_database_password_is_never_shown(deployed, sandbox):
    _, env, first, second = deployed
    secrets = sandbox.ssh(HOST, "cat /etc/pinned/agroguia/secrets.env").stdout
    values = dict(line.split("=", 1) for line in secrets.split())
    password, secret_key = values["DB_PASSWORD"], values["SECRET_KEY"]
    assert len(password) >= 32
    for out in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert password not in out and secret_key not in out
    tracked = subprocess.run(["git", "-C", str(ROOT), "grep", "-l", "-F", password], capture_output=True, text=True)
    assert tracked.stdout == ""
    mode = sandbox.ssh(HOST, "stat -c '%U:%G %a' /etc/pinned/agroguia/secrets.env").stdout.strip()
    assert mode == "root:agroguia 640"


def test_app_account_reaches_only_its_databases(deployed, sandbox):
    # Through the host's MariaDB socket, as the app user with its real password (read on the host).
    script = (
        "import pymysql,sys\n"
        "pw=[l.split('=',1)[1].strip() for l in open('/etc/pinned/agroguia/secrets.env')"
        " if l.startswith('DB_PASSWORD=')][0]\n"
        "c=pymysql.connect(unix_socket='/run/mysqld/mysqld.sock',user='agroguia',password=pw)\n"
        "cur=c.cursor(); cur.execute('SHOW DATABASES'); print(sorted(r[0] for r in cur.fetchall()))\n"
        "try:\n cur.execute('CREATE DATABASE other'); print('created')\n"
        "except pymysql.err.OperationalError as e: print('denied', e.args[0])\n"
    )
    venv_python = "/srv/agroguia/current/.venv/bin/python"
    out = sandbox.ssh(HOST, f"{venv_python} - <<'EOF'\n{script}EOF").stdout
    assert "['agroguia_v0', 'information_schema']" in out
    assert "denied 1044" in out


def test_the_apps_connection_has_the_databases_collation(deployed, sandbox):
    # As the app runs: its settings (pinned_settings), its user, its release's virtualenv. A table made from
    # a literal (as data migrations of third-party apps do) must compare with the app's own tables.
    script = ("import django; django.setup()\n"
              "from django.db import connection\n"
              "c = connection.cursor()\n"
              "c.execute('SELECT @@collation_connection, @@collation_database'); print(*c.fetchone())\n"
              "c.execute('CREATE TEMPORARY TABLE t AS SELECT %s AS name', ['Tomato'])\n"
              "c.execute('SELECT COUNT(*) FROM crops_crop JOIN t ON crops_crop.name = t.name'); print(*c.fetchone())\n")
    out = sandbox.ssh(HOST, "cd /srv/agroguia/current && runuser -u agroguia -- env DJANGO_SETTINGS_MODULE="
                            f"pinned_settings .venv/bin/python - <<'EOF'\n{script}EOF").stdout.split("\n")
    assert out[0] == "utf8mb4_unicode_ci utf8mb4_unicode_ci", out
    assert out[1] == "1", out
