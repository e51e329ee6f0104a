"""End to end: the pinned release online on a sandbox host, checked as a user sees it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import PREFIX, ROOT, http_get

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


# ------------------------------------------------------------------ the virtualenv's background build

def commit_on_a(commits, tmp_path, requirements: str, message: str) -> tuple[str, str]:
    """A clone of the example repository with one commit on top of A changing only requirements.txt:
    (the clone's path, the commit)."""
    clone = tmp_path / "repo"
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(ROOT / ".build/agroguia"), str(clone)], check=True)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "checkout", "-q", "--detach", commits["A"]["commit"]], check=True)
    (clone / "requirements.txt").write_text(requirements)
    when = "2026-11-20T12:00:00+00:00"
    subprocess.run([*git, "commit", "-q", "-am", message], check=True,
                   env={**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return str(clone), head


def venv_state(sandbox) -> str:
    """Per virtualenv folder: whether it is ready, its build's status; then any build still running, and the
    deploy lock's undo hooks."""
    return sandbox.ssh(HOST, "for v in /srv/agroguia/venvs/*; do echo \"$(basename $v) "
                             "ready=$([ -e $v/.pinned-ready ] && echo y || echo n) "
                             "status=$(cat $v/.pinned-build.status 2>/dev/null)\"; done; "
                             "echo running=$(pgrep -f '[p]inned /srv/agroguia/venvs/' | wc -l); "
                             "echo hooks=$(ls /run/lock/pinned-agroguia.lock.undo.d 2>/dev/null | wc -l)").stdout


def test_a_failing_pip_install_fails_the_deploy_and_changes_nothing_served(deployed, sandbox, commits, tmp_path):
    host, env, *_ = deployed
    before = venv_state(sandbox)
    repository, bad = commit_on_a(commits, tmp_path, "Django>=5.2,<5.3\npinned-no-such-package-4f1c==1.0\n",
                                  "a requirement that does not exist")
    env.write(repository=repository, release=bad)
    try:
        proc = env.deploy(check=False)
    finally:
        env.write(repository=str(ROOT / ".build/agroguia"), release=commits["A"]["commit"])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "+ venv-start" in proc.stdout  # the build was started in the background...
    # ... and its failure is the deploy's, with pip's own words
    assert "pinned: building the virtualenv" in output and "pinned-no-such-package-4f1c" in output, output[-3000:]
    assert re.search(r"No matching distribution|Could not find a version", output), output[-3000:]
    after = venv_state(sandbox)
    new = [line for line in after.splitlines() if line.split(" ")[0] not in before and "ready=" in line]
    assert len(new) == 1 and "ready=n" in new[0] and "status=1" in new[0], after  # built, failed, never ready
    assert "running=0" in after and "hooks=0" in after, after
    # nothing served changed: A is current and answers; the bad release was never built
    assert sandbox.ssh(HOST, "readlink /srv/agroguia/current").stdout.strip().endswith(release_id(commits, "A"))
    listed = sandbox.ssh(HOST, "ls -a /srv/agroguia/versions/0").stdout.split()
    assert not [name for name in listed if bad[:12] in name], listed
    page = http_get(f"http://{host.address}/")
    assert page.status == 200 and "Release: A" in page.body


def test_a_run_killed_while_its_venv_builds_leaves_no_build_running(deployed, sandbox, commits, tmp_path):
    host, env, *_ = deployed
    # pip waits on an index that never answers (a documentation address: its packets are dropped), so the build
    # is surely still running when the run is killed.
    repository, other = commit_on_a(commits, tmp_path, "--index-url http://192.0.2.1/simple/\nDjango>=5.2,<5.3\n",
                                    "an index that never answers")
    env.write(repository=repository, release=other)
    envvars = {**os.environ, "PINNED_STATE_DIR": str(env.state_dir), "PINNED_SANDBOX_PREFIX": PREFIX}
    run = subprocess.Popen([str(ROOT / ".venv/bin/pyinfra"), "-y", "--limit", HOST, "inventory.py", "deploy.py",
                            "--data", f"env={env.name}"], cwd=ROOT, env=envvars, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # The build runs in the background on the host (its pid file is there, no status yet): kill the run.
        deadline, building = time.monotonic() + 120, []
        while time.monotonic() < deadline and run.poll() is None and not building:
            building = sandbox.ssh(HOST, "for v in /srv/agroguia/venvs/*; do [ -s $v/.pinned-build.pid ] && "
                                         "[ ! -e $v/.pinned-build.status ] && echo $v; done; true").stdout.split()
        assert run.poll() is None and building, "the virtualenv's build was never seen running"
        assert re.search(r"running=[1-9]", venv_state(sandbox))
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        # The deploy lock's holder ends with the run's connection and runs the build's undo hook: the build stops.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = venv_state(sandbox)
            if "running=0" in state and "hooks=0" in state:
                break
            time.sleep(0.2)
        assert "running=0" in state and "hooks=0" in state, state
        left = sandbox.ssh(HOST, f"ls -a {building[0]}").stdout.split()
        assert ".pinned-ready" not in left and ".pinned-build.status" not in left, left
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        env.write(repository=str(ROOT / ".build/agroguia"), release=commits["A"]["commit"])
    # A is still served, and the hosts converge to it.
    env.deploy()
    assert "No changes" in env.pinned("plan").stdout
    page = http_get(f"http://{host.address}/")
    assert page.status == 200 and "Release: A" in page.body
