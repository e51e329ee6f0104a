"""End to end on one sandbox host (web + db): backups of the current schema's database — taken, listed,
downloaded, restored (after a backup of the state before), refused for another schema's database, taken
before a database is dropped — and scheduled backups declared in the state file (a timer that prunes
beyond `keep`), converged and removed again."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from conftest import Env, http_get

pytestmark = pytest.mark.sandbox
HOST = "bkserver"
FOLDER = "/var/backups/pinned/agroguia"
TIMER, SERVICE = "pinned-backup-agroguia.timer", "pinned-backup-agroguia.service"
UNIT_FILES = (f"/etc/systemd/system/{TIMER}", f"/etc/systemd/system/{SERVICE}",
              "/usr/local/lib/pinned/backup-agroguia.sh")
ID = r"\d{8}T\d{6}Z-agroguia_v\d+\.sql\.gz"


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    e = Env("backups", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    e.deploy()
    return e


def sql(sandbox, query: str) -> str:
    return sandbox.ssh(HOST, f'mysql -N -B -e "{query}"').stdout.strip()


def listed(env) -> list[dict]:
    return json.loads(env.pinned("backups", "--json").stdout)["backups"]


def page(sandbox):
    return http_get(f"http://{sandbox.booted[HOST].address}/")


def timed(env, *args: str) -> str:
    """`pinned ARGS`, printing its output and its wall time (connecting and observing included)."""
    started = time.monotonic()
    out = env.pinned(*args).stdout
    print(f"$ pinned {' '.join(args)}  ({time.monotonic() - started:.1f} s in all)\n{out}")
    return out


def test_backup_is_a_root_only_gzip_listed_with_its_size(env, sandbox):
    out = timed(env, "backup")
    backup_id = re.search(rf"^({ID})  .* in [\d.]+ s", out, re.M).group(1)
    assert backup_id.endswith("-agroguia_v0.sql.gz")
    rows = {b["id"]: b for b in listed(env)}
    assert rows[backup_id]["bytes"] > 0 and rows[backup_id]["database"] == "agroguia_v0"
    assert backup_id in env.pinned("backups").stdout
    modes = sandbox.ssh(HOST, f"stat -c '%a %U' {FOLDER} {FOLDER}/{backup_id}").stdout.split("\n")
    assert modes[:2] == ["700 root", "600 root"]
    assert sandbox.ssh(HOST, f"gzip -t {FOLDER}/{backup_id} && ls -A {FOLDER} | grep -c partial", check=False
                       ).stdout.strip() == "0"
    secrets = sandbox.ssh(HOST, "cat /etc/pinned/agroguia/secrets.env").stdout
    assert not any(line.split("=", 1)[1] in out for line in secrets.split())


def test_restore_brings_the_rows_back_after_a_backup_of_the_state_before(env, sandbox):
    before = listed(env)[-1]["id"]
    sql(sandbox, "INSERT INTO agroguia_v0.crops_crop (name) VALUES ('Zucchini')")
    assert sql(sandbox, "SELECT COUNT(*) FROM agroguia_v0.crops_crop WHERE name = 'Zucchini'") == "1"
    out = timed(env, "restore", before)
    pre = re.search(rf"backed up agroguia_v0 before restoring: ({ID})", out).group(1)
    assert re.search(rf"restored \d+ tables from {re.escape(before)} into agroguia_v0 .* in [\d.]+ s", out)
    assert sql(sandbox, "SELECT COUNT(*) FROM agroguia_v0.crops_crop WHERE name = 'Zucchini'") == "0"
    assert pre in {b["id"] for b in listed(env)} and pre > before
    assert "Zucchini" in sandbox.ssh(HOST, f"gzip -dc {FOLDER}/{pre}").stdout  # the state before is kept
    response = page(sandbox)
    assert response.status == 200 and "Release: A" in response.body and "Zucchini" not in response.body


def test_download_is_a_valid_gzip_here(env, tmp_path):
    out = timed(env, "backup", "--download", str(tmp_path))
    backup_id = re.search(rf"^({ID})", out, re.M).group(1)
    local = tmp_path / backup_id
    assert local.stat().st_size == {b["id"]: b for b in listed(env)}[backup_id]["bytes"]
    assert subprocess.run(["gzip", "-t", str(local)]).returncode == 0
    assert oct(local.stat().st_mode & 0o777) == "0o600" and not list(tmp_path.glob(".*"))


def test_another_schemas_backup_is_refused_and_drop_database_backs_up_first(env, sandbox, commits):
    env.write(release=commits["C"]["commit"])
    env.deploy()
    v1 = re.search(rf"^({ID})", env.pinned("backup").stdout, re.M).group(1)
    assert v1.endswith("-agroguia_v1.sql.gz")
    env.write(release=commits["A"]["commit"])
    env.deploy()
    refused = env.pinned("restore", v1, check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "agroguia_v1 (schema version 1)" in refused.stderr and "pin a release of schema version 1" in refused.stderr
    dropped = timed(env, "drop-database", "agroguia_v1")
    saved = re.search(rf"backed up agroguia_v1 before dropping it: ({ID})", dropped).group(1)
    assert saved.endswith("-agroguia_v1.sql.gz") and saved in {b["id"] for b in listed(env)}
    assert "agroguia_v1" not in sql(sandbox, "SHOW DATABASES").split()
    assert page(sandbox).status == 200


def test_scheduled_backups_are_planned_converged_pruned_and_removed(env, sandbox):
    env.write(backups={"on_calendar": "*-*-* 03:30:00", "keep": 2})
    plan = env.pinned("plan").stdout
    for path in UNIT_FILES:
        assert f"+ config {path}" in plan
    assert f"+ backup-timer {TIMER}" in plan and "OnCalendar=*-*-* 03:30:00" in plan
    env.deploy()
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
    assert sandbox.ssh(HOST, f"systemctl is-enabled {TIMER}; systemctl is-active {TIMER}").stdout.split() == [
        "enabled", "active"]
    assert sandbox.ssh(HOST, f"stat -c %a {UNIT_FILES[2]}").stdout.strip() == "755"
    sandbox.ssh(HOST, f"touch {FOLDER}/unrelated.txt {FOLDER}/20200101T000000Z-other_v0.sql.gz")
    for _ in range(4):  # keep + 2
        sandbox.ssh(HOST, f"systemctl start {SERVICE}")
    rows = listed(env)
    assert len(rows) == 2 and all(b["database"] == "agroguia_v0" for b in rows)
    assert sandbox.ssh(HOST, f"ls {FOLDER}/unrelated.txt {FOLDER}/20200101T000000Z-other_v0.sql.gz").returncode == 0

    del env.state["backups"]
    env.write()
    plan = env.pinned("plan").stdout
    assert f"- backup-timer {TIMER}" in plan
    env.deploy()
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
    assert sandbox.ssh(HOST, f"ls {' '.join(UNIT_FILES)}", check=False).returncode != 0
    assert sandbox.ssh(HOST, f"systemctl is-enabled {TIMER}", check=False).stdout.strip() != "enabled"
    assert len(listed(env)) == 2  # the backups stay
