"""End to end: previews on one host (web + db). B runs beside A at its own port, `current` untouched; its
database account can only read; promoting B rebuilds nothing; removing the preview removes its units, nginx
server, account and password. C (a schema change) as a preview gets its own copied database, dropped with it;
with `promote: keep-data`, pinning C goes live on that database (its data kept, not migrated again)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import Env, failure_summary, http_get

pytestmark = pytest.mark.sandbox
HOST = "prv"
APP = "agroguia"
SECRETS = f"/etc/pinned/{APP}/secrets.env"


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("prv", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.deploy()
    return env


def rid(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def page(sandbox, port=80):
    return http_get(f"http://{sandbox.booted[HOST].address}:{port}/")


def sql_as(sandbox, user, key, database, statement):
    """`statement` run by `user` (password from the secrets file, never on a command line we print)."""
    return sandbox.ssh(HOST, f"MYSQL_PWD=$(sed -n 's/^{key}=//p' {SECRETS}) mysql -N -B -u {user} {database} "
                             f"-e \"{statement}\"", check=False)


def site_state(sandbox):
    """What must not move while previews come and go: `current`, the site's upstream and nginx server."""
    return sandbox.ssh(HOST, f"readlink /srv/{APP}/current; cat /etc/nginx/pinned/{APP}-upstream.conf "
                             f"/etc/nginx/conf.d/pinned-{APP}.conf").stdout


def test_preview_beside_current_read_only_promote_and_remove(env, sandbox, commits):
    current_unit = f"{APP}@{rid(commits, 'A')}.service"
    before = site_state(sandbox) + sandbox.ssh(
        HOST, f"systemctl show -p MainPID,ActiveEnterTimestamp {current_unit}").stdout
    assert "Release: A" in page(sandbox).body

    # pinned preview add writes the state file, keeping its comments.
    env.path.write_text("# the demo, with a preview\n" + env.path.read_text())
    env.pinned("preview", "add", "try-b", "B", "--port", "8081")
    text = env.path.read_text()
    assert text.startswith("# the demo, with a preview\n")
    assert f'  try-b: {{release: "{commits["B"]["commit"]}", port: 8081}}\n' in text
    plan = env.pinned("plan").stdout
    assert f"+ release /srv/{APP}/versions/0/{rid(commits, 'B')}" in plan and "preview try-b" in plan
    assert "+ preview-account agroguia_pv_try_b@localhost" in plan and "SELECT on agroguia_v0 only" in plan
    assert "switch" not in plan and "~ restart" not in plan and "- stop" not in plan
    deployed = env.deploy()

    assert "Release: B" in page(sandbox, 8081).body
    assert "Release: A" in page(sandbox).body
    after = site_state(sandbox) + sandbox.ssh(
        HOST, f"systemctl show -p MainPID,ActiveEnterTimestamp {current_unit}").stdout
    assert after == before, "current, the site's upstream or server, or the current release's process moved"
    releases = json.loads(env.pinned("releases", "--json").stdout)
    assert releases["previews"]["try-b"]["hosts"][HOST] == {
        "url": f"http://{sandbox.booted[HOST].address}:8081/", "running": True}
    assert "try-b" in env.pinned("releases").stdout
    shown = env.pinned("status").stdout
    assert (f"preview try-b: release {rid(commits, 'B')}" in shown
            and f"{HOST}: http://{sandbox.booted[HOST].address}:8081/ (running)" in shown), shown

    # The preview may read the current database, never write it: through the site and directly.
    notes = "SELECT COUNT(*) FROM crops_note"
    count = sandbox.ssh(HOST, f"mysql -N -B {APP}_v0 -e '{notes}'").stdout.strip()
    post = http_get_post(sandbox, 8081, "from the preview")
    assert post >= 500, post
    assert sandbox.ssh(HOST, f"mysql -N -B {APP}_v0 -e '{notes}'").stdout.strip() == count
    key = "PINNED_PREVIEW_TRY_B_DB_PASSWORD"
    assert sql_as(sandbox, f"{APP}_pv_try_b", key, f"{APP}_v0", notes).stdout.strip() == count
    denied = sql_as(sandbox, f"{APP}_pv_try_b", key, f"{APP}_v0",
                    "INSERT INTO crops_note (text, crops_note.release, created) VALUES ('x', 'x', NOW())")
    assert denied.returncode != 0 and "denied" in denied.stderr, denied.stderr
    assert http_get_post(sandbox, 80, "through the site") == 201  # the site itself writes as before
    # Its password is never shown: not in the deploy's output, the plan (text, JSON), `pinned releases`, nor in
    # a world-readable file of the preview (its units and nginx server name the secrets file's key only).
    password = sandbox.ssh(HOST, f"sed -n 's/^{key}=//p' {SECRETS}").stdout.strip()
    assert len(password) >= 32
    shown = (deployed.stdout + deployed.stderr + env.pinned("plan").stdout + env.pinned("plan", "--json").stdout
             + env.pinned("releases", "--json").stdout + env.pinned("secret", "list").stdout
             + sandbox.ssh(HOST, f"cat /etc/systemd/system/{APP}-pv-try-b.* /etc/nginx/conf.d/pinned-{APP}.pv-try-b"
                                 f".conf /srv/{APP}/versions/0/*/pinned_settings.py").stdout)
    assert password not in shown and key in shown
    assert "a preview's database password" in env.pinned("secret", "list").stdout
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0

    # Promote B: pin it; nothing is rebuilt (the release tree and the venvs are untouched).
    tree = f"find /srv/{APP}/versions/0/{rid(commits, 'B')} /srv/{APP}/venvs -printf '%p %i %T@\\n' | sort"
    snapshot = sandbox.ssh(HOST, tree).stdout
    env.pinned("pin", "B")
    kinds = {s["kind"] for s in json.loads(env.pinned("plan", "--json").stdout)["steps"]}
    assert kinds == {"app", "switch", "warm"}, kinds  # A is kept warm for a rollback (keep_warm's default)
    env.deploy()
    assert "Release: B" in page(sandbox).body and "Release: B" in page(sandbox, 8081).body
    assert sandbox.ssh(HOST, tree).stdout == snapshot

    # Remove try-b and add a preview of C (new migration) in the same deploy.
    env.pinned("preview", "remove", "try-b")
    env.pinned("preview", "add", "mig", "C", "--port", "8082")
    plan = env.pinned("plan").stdout
    assert "- preview-remove agroguia-pv-try-b.service" in plan
    assert "- preview-drop agroguia_pv_try_b" in plan
    assert "+ database agroguia_pv_mig" in plan and "a copy of agroguia_v0" in plan
    env.deploy()
    # (a "not-found inactive" entry is systemd not yet forgetting a removed unit: no unit at all)
    units = sandbox.ssh(HOST, f"systemctl list-units --all --plain --no-legend '{APP}-pv-*' "
                              f"| grep -v ' not-found inactive '; ls /etc/systemd/system/ /etc/nginx/conf.d/").stdout
    assert "try-b" not in units and f"{APP}-pv-mig.service" in units
    assert http_get_status(sandbox, 8081) is None  # nothing listens there any more
    users = sandbox.ssh(HOST, "mysql -N -B -e \"SELECT user FROM mysql.user WHERE user LIKE 'agroguia_pv%'\"").stdout
    assert "agroguia_pv_try_b" not in users and "agroguia_pv_mig" in users
    assert key not in sandbox.ssh(HOST, f"cut -d= -f1 {SECRETS}").stdout
    assert "Release: C" in page(sandbox, 8082).body and "Release: B" in page(sandbox).body
    columns = sandbox.ssh(HOST, f"mysql -N -B -e 'SHOW COLUMNS FROM {APP}_pv_mig.crops_crop'").stdout
    assert "variety" in columns  # migrated, its own copy
    assert "variety" not in sandbox.ssh(HOST, f"mysql -N -B -e 'SHOW COLUMNS FROM {APP}_v0.crops_crop'").stdout
    assert http_get_post(sandbox, 8082, "in the preview's own copy") == 201  # its own database: writable
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0

    # Removed: its database is dropped with it; the site's stays.
    env.pinned("preview", "remove", "mig")
    env.deploy()
    dbs = sandbox.ssh(HOST, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    assert f"{APP}_pv_mig" not in dbs and f"{APP}_v0" in dbs
    assert "agroguia_pv" not in sandbox.ssh(HOST, "mysql -N -B -e 'SELECT user FROM mysql.user'").stdout
    assert not sandbox.ssh(HOST, f"ls /etc/systemd/system/{APP}-pv-* /etc/nginx/conf.d/pinned-{APP}.pv-* "
                                 "2>/dev/null", check=False).stdout
    assert "Release: B" in page(sandbox).body
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_promote_with_keep_data_goes_live_on_the_previews_own_database(env, sandbox, commits):
    """C (new migrations) as a preview with `promote: keep-data`: a note written through the preview is in the
    site's database after C is pinned; nothing rebuilt, not migrated again; the preview's database is gone."""
    c = rid(commits, "C")
    # Refused, one line naming the field, nothing changed: a preview with the pinned release's migrations (no
    # database of its own to keep), by `pinned preview add` and, written by hand, by `pinned plan` before any host.
    text = env.path.read_text()
    data = yaml.safe_load(text)
    same = "A" if data["release"] == commits["B"]["commit"] else "B"  # the pinned one's schema, not it
    refused = env.pinned("preview", "add", "same", same, "--port", "8084", "--keep-data", check=False)
    assert refused.returncode == 1 and env.path.read_text() == text
    assert refused.stderr.count("\n") == 1 and "field 'previews.same.promote': keep-data, but release" in refused.stderr
    data["previews"] = {**(data.get("previews") or {}),
                        "same": {"release": commits[same]["commit"], "port": 8084, "promote": "keep-data"}}
    env.path.write_text(yaml.safe_dump(data, sort_keys=False))
    planned = env.pinned("plan", check=False)
    assert planned.returncode == 1 and "field 'previews.same.promote'" in planned.stderr, planned.stderr
    assert planned.stderr.count("\n") == 1 and "Connecting" not in planned.stdout + planned.stderr
    env.path.write_text(text)
    env.pinned("preview", "add", "keep", "C", "--port", "8083", "--keep-data")
    assert "port: 8083, promote: keep-data}" in env.path.read_text()
    env.deploy()
    assert "Release: C" in page(sandbox, 8083).body
    assert http_get_post(sandbox, 8083, "written through the preview") == 201  # its own copy: writable
    assert http_get_post(sandbox, 80, "written to production after the copy") == 201
    source = sandbox.ssh(HOST, f"readlink /srv/{APP}/current").stdout.strip()
    current_db = f"{APP}_v" + re.search(r"versions/(\d+)/", source).group(1)
    tree = f"find /srv/{APP}/versions/*/{c} /srv/{APP}/venvs -printf '%p %i %T@\\n' | sort"
    snapshot = sandbox.ssh(HOST, tree).stdout
    assert f"/{c} " in snapshot

    env.pinned("pin", "C")
    shown = env.pinned("plan").stdout
    made = re.search(rf"\+ database ({APP}_v\d+)\s+\(adopted from preview keep: the tables of {APP}_pv_keep", shown)
    assert made, shown
    adopted = made.group(1)
    assert f"writes made to {current_db} since the preview's copy was made are NOT in {adopted}" in shown
    kinds = {s["kind"] for s in json.loads(env.pinned("plan", "--json").stdout)["steps"]}
    assert not {"migrate", "preview-migrate", "write-freeze", "db-freeze", "release", "venv"} & kinds, kinds
    # A view cannot be renamed into another database: the adoption refuses before it moves anything, the run
    # stops before the switch, and nothing of the preview's data is lost.
    sandbox.ssh(HOST, f"mysql -e 'CREATE VIEW {APP}_pv_keep.pinned_test_view AS SELECT 1 AS one'")
    failed = env.deploy(check=False)
    assert failed.returncode != 0, failure_summary(failed)
    assert f"{APP}_pv_keep has 1 views, which RENAME TABLE cannot move" in failed.stdout + failed.stderr, \
        failure_summary(failed)
    dbs = sandbox.ssh(HOST, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    assert adopted not in dbs and f"{APP}_pv_keep" in dbs
    assert "written through the preview" in sandbox.ssh(
        HOST, f"mysql -N -B {APP}_pv_keep -e 'SELECT text FROM crops_note'").stdout
    assert sandbox.ssh(HOST, f"readlink /srv/{APP}/current").stdout.strip() == source
    assert "Release: C" not in page(sandbox).body
    sandbox.ssh(HOST, f"mysql -e 'DROP VIEW {APP}_pv_keep.pinned_test_view'")
    env.deploy()

    assert "Release: C" in page(sandbox).body  # through nginx, the promoted release
    notes = sandbox.ssh(HOST, f"mysql -N -B {adopted} -e 'SELECT text FROM crops_note'").stdout.splitlines()
    assert "written through the preview" in notes and "written to production after the copy" not in notes
    dbs = sandbox.ssh(HOST, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    assert f"{APP}_pv_keep" not in dbs and current_db in dbs and adopted in dbs
    assert sandbox.ssh(HOST, tree).stdout == snapshot  # not rebuilt: same files, inodes and times
    assert http_get_post(sandbox, 80, "the site writes to it") == 201  # the app's account reaches it
    assert "the site writes to it" in sandbox.ssh(HOST, f"mysql -N -B {adopted} -e 'SELECT text FROM crops_note'"
                                                  ).stdout
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0

    env.pinned("preview", "remove", "keep")
    env.deploy()
    assert not sandbox.ssh(HOST, f"ls /etc/systemd/system/{APP}-pv-* 2>/dev/null", check=False).stdout
    assert "agroguia_pv" not in sandbox.ssh(HOST, "mysql -N -B -e 'SELECT user FROM mysql.user'").stdout
    assert "Release: C" in page(sandbox).body
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def http_get_post(sandbox, port, text):
    import urllib.error
    import urllib.parse
    import urllib.request
    data = urllib.parse.urlencode({"text": text}).encode()
    try:
        with urllib.request.urlopen(f"http://{sandbox.booted[HOST].address}:{port}/notes/", data=data,
                                    timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def http_get_status(sandbox, port):
    import urllib.error
    try:
        return page(sandbox, port).status
    except (urllib.error.URLError, ConnectionError, OSError):
        return None
