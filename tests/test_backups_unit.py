"""Backups without hosts: the state file's `backups:` (validated), the scheduled backups' planner (pure,
with the simulator), the timer's operation, and the backup script's naming, atomic rename and pruning run
here on temporary files with a stand-in mysqldump (no MariaDB)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from test_plan import EMPTY, desired

from pinned.operations.backups import backup_command, backup_timer, list_command
from pinned.state import changes as c
from pinned.state.layout import Layout
from pinned.state.model import StateFileError, parse_state
from pinned.state.plan import plan
from pinned.state.render import render_text
from simulate import apply_plan

BASE = "app: agroguia\nrepository: /src\nrelease: abcdef1\ndjango: {settings: agroguia.settings}\n"
LAY = Layout("agroguia")


# --- the state file ---------------------------------------------------------------------------------------

def test_backups_field_is_optional_with_defaults():
    assert parse_state(BASE).backups is None
    b = parse_state(BASE + "backups: {}\n").backups
    assert (b.on_calendar, b.keep) == ("daily", 7)
    b = parse_state(BASE + "backups: {on_calendar: 'Mon..Fri *-*-* 03:30:00', keep: 30}\n").backups
    assert (b.on_calendar, b.keep) == ("Mon..Fri *-*-* 03:30:00", 30)


@pytest.mark.parametrize("value, field", [
    ("{on_calendar: every tuesday}", "backups.on_calendar"),
    ("{on_calendar: 'daily\\nExecStart=/bin/sh'}", "backups.on_calendar"),
    ("{on_calendar: \"daily'\"}", "backups.on_calendar"),
    ("{on_calendar: ''}", "backups.on_calendar"),
    ("{keep: 0}", "backups.keep"),
    ("{keep: -3}", "backups.keep"),
    ("{keep: many}", "backups.keep"),
    ("{daily: true}", "backups.daily"),
    ("daily", "backups"),
])
def test_bad_backups_field_is_one_line_naming_it(value, field):
    with pytest.raises(StateFileError) as err:
        parse_state(BASE + f"backups: {value}\n", "state/x.yaml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("state/x.yaml: ") and f"'{field}'" in message


# --- the planner ------------------------------------------------------------------------------------------

def converged(d):
    return apply_plan(plan(d, EMPTY), EMPTY, d)


def test_backups_are_planned_on_the_db_host_after_the_switch_and_converge():
    d = desired("A", backups={"on_calendar": "daily", "keep": 3})
    p = plan(d, EMPTY)
    steps = [s for s in p.steps if s.target in (*LAY.backup_files, LAY.backup_timer)]
    assert [s.target for s in steps] == [*LAY.backup_files, LAY.backup_timer]
    assert all(s.phase == "cleanup" and s.action == "add" for s in steps)
    script, service, timer, enable = (s.change for s in steps)
    assert script.mode == "0755" and "mysqldump --single-transaction" in script.content
    assert f"ExecStart={LAY.backup_script} {LAY.backups_dir} agroguia_v0 3 " in service.content
    assert "$$" in service.content and "\\" not in service.content  # systemd reads $$ as $; no escapes
    assert "OnCalendar=daily\n" in timer.content and "WantedBy=timers.target" in timer.content
    assert enable == c.BackupTimer(LAY.backup_timer, enable=True)
    text = render_text(p, "state/x.yaml")
    assert f"+ backup-timer {LAY.backup_timer}  (daily, keep 3" in text
    assert plan(d, converged(d)).empty


def test_a_changed_schedule_or_a_schema_change_rewrites_the_units_and_restarts_the_timer():
    d = desired("A", backups={"on_calendar": "daily", "keep": 3})
    on = converged(d)
    weekly = plan(desired("A", backups={"on_calendar": "weekly", "keep": 3}), on)
    assert [(s.kind, s.target) for s in weekly.steps] == [("config", LAY.backup_timer_file),
                                                           ("backup-timer", LAY.backup_timer)]
    assert weekly.steps[0].action == "change" and "-OnCalendar=daily" in weekly.steps[0].diff
    s1 = desired("S1", backups={"on_calendar": "daily", "keep": 3})
    steps = [s for s in plan(s1, on).steps if s.kind in ("config", "backup-timer") and "backup" in s.target]
    assert "agroguia_v1 3" in steps[0].diff and steps[-1].kind == "backup-timer"


def test_a_timer_stopped_by_hand_is_started_again():
    d = desired("A", backups={})
    on = converged(d)
    units = {**on["server"].units, LAY.backup_timer: {"active": "inactive", "enabled": True}}
    p = plan(d, {"server": replace(on["server"], units=units)})
    assert [(s.action, s.kind) for s in p.steps] == [("change", "backup-timer")]


def test_removing_backups_disables_the_timer_and_removes_its_files_once():
    on = converged(desired("A", backups={"keep": 2}))
    d = desired("A")
    p = plan(d, on)
    assert [(s.action, s.kind, s.target) for s in p.steps] == [("remove", "backup-timer", LAY.backup_timer)]
    assert p.steps[0].change == c.BackupTimer(LAY.backup_timer, enable=False, remove=LAY.backup_files)
    assert plan(d, apply_plan(p, on, d)).empty
    assert plan(d, EMPTY).steps == plan(desired("A"), EMPTY).steps  # never declared: nothing about it


def test_timer_operation():
    def raw(**kw):
        return [cmd.get_raw_value() for cmd in backup_timer._inner(**kw)]

    on = raw(timer=LAY.backup_timer, enable=True)
    assert len(on) == 1 and on[0].endswith(f"pinned {LAY.backup_timer} 1")
    off = raw(timer=LAY.backup_timer, enable=False, remove=LAY.backup_files)
    assert off[0].endswith(f"pinned {LAY.backup_timer} 0 " + " ".join(LAY.backup_files))


def test_backup_ids_say_their_database():
    assert LAY.database_of_backup("20261126T111500Z-agroguia_v12.sql.gz") == "agroguia_v12"
    for other in ("20261126T111500Z-agroguia_v1.sql", "x-agroguia_v1.sql.gz", ".20261126T111500Z-agroguia_v1.sql.gz"
                  ".partial", "20261126T111500Z-agroguiaXv1.sql.gz", "20261126T111500Z-other_v1.sql.gz",
                  "../20261126T111500Z-agroguia_v1.sql.gz"):
        assert LAY.database_of_backup(other) is None, other


# --- the scripts, here ------------------------------------------------------------------------------------

def fake_mysqldump(tmp_path: Path, body: str = 'echo "-- dump of $*"; echo "INSERT INTO t VALUES (1);"') -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mysqldump").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "mysqldump").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run(command, env) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, env=env, timeout=60)


def test_backup_script_writes_a_root_only_gzip_and_prunes_only_the_apps_backups(tmp_path):
    env = fake_mysqldump(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    old = [f"2026010{i}T000000Z-agroguia_v0.sql.gz" for i in range(1, 5)]
    others = ["20260101T000000Z-other_v0.sql.gz", "20260101T000000Z-agroguia_v0.sql", "notes.txt",
              ".20260101T000000Z-agroguia_v0.sql.gz.partial"]
    for name in old + others:
        (folder / name).write_text("x")
    (folder / "20260101T000000Z-agroguia_v9.sql.gz.d").mkdir()  # a folder is never removed
    out = run(backup_command(str(folder), "agroguia_v1", 3, LAY.backup_id_pattern), env)
    assert out.returncode == 0, out.stderr
    name, size = out.stdout.split()
    assert re.fullmatch(r"\d{8}T\d{6}Z-agroguia_v1\.sql\.gz", name) and int(size) == (folder / name).stat().st_size
    assert subprocess.run(["gzip", "-t", str(folder / name)]).returncode == 0
    assert "-- dump of --single-transaction --routines --triggers --events" in subprocess.run(
        ["gzip", "-dc", str(folder / name)], capture_output=True, text=True).stdout
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and oct((folder / name).stat().st_mode & 0o777) == "0o600"
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([name, old[3], old[2], *others, "20260101T000000Z-agroguia_v9.sql.gz.d"])
    listing = json.loads(run(list_command(str(folder), LAY.backup_id_pattern), env).stdout)
    assert [r["id"] for r in listing] == [old[2], old[3], name]
    assert listing[0] == {"id": old[2], "database": "agroguia_v0", "bytes": 1, "time": "2026-01-03T00:00:00Z"}


def test_a_failed_dump_leaves_no_backup_and_prunes_nothing(tmp_path):
    env = fake_mysqldump(tmp_path, 'echo "-- partial"; echo "mysqldump: Got error: 1049" >&2; exit 2')
    folder = tmp_path / "backups"
    folder.mkdir()
    for i in range(1, 4):
        (folder / f"2026010{i}T000000Z-agroguia_v0.sql.gz").write_text("x")
    before = sorted(p.name for p in folder.iterdir())
    out = run(backup_command(str(folder), "agroguia_v0", 1, LAY.backup_id_pattern), env)
    assert out.returncode != 0 and "1049" in out.stderr
    assert sorted(p.name for p in folder.iterdir()) == before  # no partial file left, nothing pruned


def test_two_backups_in_one_second_get_two_ids(tmp_path):
    env = fake_mysqldump(tmp_path)
    folder = tmp_path / "b"
    ids = [run(backup_command(str(folder), "agroguia_v0", 0, LAY.backup_id_pattern), env).stdout.split()[0]
           for _ in range(2)]
    assert ids[0] < ids[1] and sorted(p.name for p in folder.iterdir()) == ids


def test_the_observe_request_asks_for_the_timer_and_the_backup_files():
    from pinned.engine import request_for

    request = json.loads(request_for(desired("A")))
    assert request["units"] == [LAY.backup_timer] and set(LAY.backup_files) <= set(request["files"])
