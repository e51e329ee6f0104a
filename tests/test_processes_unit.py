"""Processes and schedules without hosts: the state file's checks (one line naming the field, before any host
is contacted), the calendar subset used without systemd-analyze, the unit files (quoting, the web unit's
hardening) and the plan (start before the switch, stop after it, apart from the web units; removal)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import replace

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_model import GOOD
from test_plan import desired

from conftest import ROOT
from pinned.state import model
from pinned.state.calendar import subset_error
from pinned.state.desired import HostSpec
from pinned.state.model import StateFileError, parse_state
from pinned.state.observed import HostObserved
from pinned.state.plan import plan
from pinned.state.processes import process_file, runner, schedule_files, unit_quote
from simulate import apply_plan

SCHEDULE = [{"name": "tick", "command": "manage.py tick", "on_calendar": "daily"}]


@pytest.mark.parametrize("changes, field, words", [
    ({"processes": {"worker": "python manage.py a\npython b"}}, "processes", "the command of process worker"),
    ({"processes": {"worker": ""}}, "processes", "one line of text"),
    ({"processes": {"Worker.x": "x"}}, "processes", "not a safe unit name"),
    ({"processes": {"a@b": "x"}}, "processes", "not a safe unit name"),
    ({"schedule": [{"name": "tick", "command": "x", "on_calendar": "every day"}]}, "schedule.0.on_calendar",
     "not a systemd calendar expression"),
    ({"schedule": [{"name": "tick", "command": "x", "on_calendar": "*-*-* 25:00:00"}]}, "schedule.0.on_calendar",
     "not a systemd calendar expression"),
    ({"schedule": [{"name": "../x", "command": "x", "on_calendar": "daily"}]}, "schedule.0.name",
     "not a safe unit name"),
    ({"schedule": [{"name": "t", "command": "a\rb", "on_calendar": "daily"}]}, "schedule.0.command", "one line"),
    ({"schedule": SCHEDULE * 2}, "schedule", "listed once"),
])
def test_bad_processes_and_schedules_are_one_line_naming_the_field(changes, field, words):
    with pytest.raises(StateFileError) as err:
        parse_state(yaml.safe_dump({**GOOD, **changes}), "prod.yaml")
    message = str(err.value)
    assert message.startswith(f"prod.yaml: field '{field}'") and words in message and "\n" not in message, message


@pytest.mark.parametrize("changes, field", [
    ({"processes": {"worker": "python manage.py a\npython b"}}, "processes"),
    ({"schedule": [{"name": "tick", "command": "x", "on_calendar": "every day"}]}, "schedule.0.on_calendar"),
    ({"processes": {"no/slash": "x"}}, "processes"),
])
def test_pinned_refuses_them_before_any_host_is_contacted(commits, tmp_path, changes, field):
    # The hosts named do not exist: reaching for one would be another error than the field's.
    state = {**GOOD, "repository": str(ROOT / ".build" / "agroguia"), "release": commits["A"]["commit"],
             "hosts": {"web": ["web.invalid"], "db": "db.invalid"}, **changes}
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(state))
    proc = subprocess.run([str(ROOT / ".venv/bin/pinned"), "--env", "prod", "plan"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PINNED_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"field '{field}'" in lines[0] and "prod.yaml" in lines[0], proc.stderr
    assert "invalid" not in proc.stdout and "Connecting" not in proc.stdout + proc.stderr


# ---- the calendar: systemd-analyze where present, else the subset (which must never accept what systemd refuses)

SUBSET_OK = ["daily", "hourly", "weekly", "*-*-* 03:30:00", "Mon..Fri *-*-* 12:00", "Sat,Sun 10:00", "*:0/15",
             "*-*-01 00:00:00", "2027-01-01 00:00", "12-24 18:00", "*:*:0/10", "Mon 03:00"]
SUBSET_BAD = ["every day", "25:00", "*-*-* 12:60", "Funday 10:00", "*-13-01 00:00", "*:0/0", "daily at noon", "",
              "3..1:00"]


@pytest.mark.parametrize("expression", SUBSET_OK)
def test_the_subset_accepts(expression):
    assert subset_error(expression) is None


@pytest.mark.parametrize("expression", SUBSET_BAD)
def test_the_subset_refuses(expression):
    assert subset_error(expression)


def _systemd_accepts(expression: str) -> bool:
    return subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True,
                          env={**os.environ, "LC_ALL": "C"}).returncode == 0


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze to compare with")
@given(st.lists(st.sampled_from(["Mon", "Fri", "..", ",", "*", "-", ":", "/", " ", "1", "3", "12", "24", "60", "0",
                                 "2027", "daily"]), min_size=1, max_size=9).map("".join))
def test_what_the_subset_accepts_systemd_accepts_too(expression):
    if subset_error(expression) is None:
        assert _systemd_accepts(expression), expression


def test_without_systemd_analyze_the_subset_decides(monkeypatch):
    monkeypatch.setattr(model.shutil, "which", lambda name: None)
    model._systemd_calendar_error.cache_clear()
    try:
        with pytest.raises(StateFileError, match="without systemd-analyze"):
            parse_state(yaml.safe_dump({**GOOD, "schedule": [{"name": "t", "command": "x",
                                                              "on_calendar": "every day"}]}), "s.yaml")
        assert parse_state(yaml.safe_dump({**GOOD, "schedule": SCHEDULE}), "s.yaml").schedule[0].on_calendar == "daily"
    finally:
        model._systemd_calendar_error.cache_clear()


# ---- unit files


def unit_exec_argument(text: str) -> str:
    """The third word of ExecStart= (/bin/sh -c ARG) as systemd reads it: C escapes in quotes, %% and $$."""
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    quoted = line.split(" ", 2)[2]
    assert quoted.startswith('"') and quoted.endswith('"')
    out, i, body = [], 0, quoted[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            out.append(body[i + 1])
            i += 2
            continue
        assert ch not in '"', "an unescaped quote"
        if ch in "%$":
            assert body[i + 1] == ch, f"a lone {ch}"
            i += 1
        out.append(ch)
        i += 1
    return "".join(out)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60))
def test_a_command_reaches_sh_exactly(command):
    d = desired("A", processes={"w": "x"})
    text = process_file(d, "w", command).content
    assert unit_exec_argument(text) == runner(command)
    assert unit_quote(command).count("\n") == 0


def test_the_runner_resolves_its_folder_once_and_runs_manage_py_with_the_release_python():
    script = runner("manage.py clearsessions")
    assert script.startswith("cd -P . || exit 1;") and script.endswith("python manage.py clearsessions")
    assert 'PINNED_RELEASE="${PWD##*/}"' in script and 'PATH="$PWD/.venv/bin:$PATH"' in script
    proc = subprocess.run(["sh", "-n", "-c", runner("python manage.py x --label \"$PINNED_RELEASE\"")])
    assert proc.returncode == 0


def test_process_and_schedule_units_have_the_web_units_user_environment_and_hardening():
    web = (ROOT / "templates" / "app.service.j2").read_text()
    hardening = [line for line in web.split("[Service]", 1)[1].split("[Install]", 1)[0].splitlines()
                 if re.match(r"^(Private|Protect|NoNewPrivileges|Restrict)", line)]
    assert len(hardening) >= 6
    d = desired("A", processes={"worker": "python manage.py process_queue"}, schedule=SCHEDULE, shared=["media"])
    worker = process_file(d, "worker", "python manage.py process_queue").content
    service, timer = (f.content for f in schedule_files(d, d.state.schedule[0]))
    for text in (worker, service):
        lines = text.splitlines()
        assert set(hardening) <= set(lines), set(hardening) - set(lines)
        assert {"User=agroguia", "Group=agroguia", "EnvironmentFile=/etc/pinned/agroguia/env",
                "EnvironmentFile=/etc/pinned/agroguia/secrets.env",
                "ReadWritePaths=/srv/agroguia/shared/media"} <= set(lines)
    assert "WorkingDirectory=/srv/agroguia/by-id/%i" in worker and "TimeoutStopSec=30" in worker
    assert "WorkingDirectory=/srv/agroguia/current" in service and "Type=oneshot" in service
    assert "OnCalendar=daily" in timer and "Unit=agroguia-schedule-tick.service" in timer


# ---- the plan

HOSTS = (HostSpec("web1", "10.0.0.11", ("web",)), HostSpec("db", "10.0.0.13", ("db",)))


def deployed(tag: str, observed=None, **state):
    d = replace(desired(tag, **state), hosts=HOSTS)
    observed = observed or {h.name: HostObserved() for h in HOSTS}
    p = plan(d, observed)
    return d, p, apply_plan(p, observed, d)


def test_a_new_release_starts_its_processes_before_the_switch_and_stops_the_old_ones_after_it():
    state = {"processes": {"worker": "python manage.py process_queue"}, "schedule": SCHEDULE}
    d, p, observed = deployed("A", **state)
    kinds = [(s.phase, s.kind) for s in p.for_host("web1")]
    assert kinds.index(("start", "process")) < kinds.index(("switch", "switch")) < kinds.index(("cleanup", "schedule"))
    start = next(s for s in p.steps if s.kind == "process")
    assert start.change.units == (f"agroguia-worker@{d.release.id}.service",)
    assert plan(d, observed).empty  # converged
    old = d.release.id
    d2, p2, observed = deployed("B", observed, **state)
    stops = [s for s in p2.steps if s.kind == "process-stop"]
    assert [s.change.units for s in stops] == [(f"agroguia-worker@{old}.service",)] and stops[0].phase == "cleanup"
    # the web units are their own step: kept warm for a rollback (keep_warm's default), while the processes stop
    assert any(s.kind == "warm" for s in p2.steps)
    assert not any(s.kind == "schedule" for s in p2.steps)  # a switch changes no timer
    # Rollback: A is on disk, nothing built; its worker starts again, B's stops.
    _, p3, observed = deployed("A", observed, **state)
    assert not any(s.kind == "release" for s in p3.steps)
    assert [s.change.units for s in p3.steps if s.kind == "process"] == [(f"agroguia-worker@{old}.service",)]
    assert [s.change.units for s in p3.steps if s.kind == "process-stop"] == [
        (f"agroguia-worker@{d2.release.id}.service",)]


def test_a_changed_command_restarts_the_current_releases_process_and_removal_removes_units():
    state = {"processes": {"worker": "python manage.py process_queue"}, "schedule": SCHEDULE}
    d, _, observed = deployed("A", **state)
    _, p, observed = deployed("A", observed, processes={"worker": "python manage.py process_queue --interval 1"},
                              schedule=SCHEDULE)
    restart = [s for s in p.steps if s.kind == "process"]
    assert len(restart) == 1 and restart[0].change.restart and "command changed: worker" in restart[0].reason
    _, p, observed = deployed("A", observed)
    removed = {(s.kind, s.target) for s in p.steps if s.action == "remove"}
    assert ("process-stop", "agroguia-*@" + d.release.id) in removed
    assert ("process-stop", "/etc/systemd/system/agroguia-worker@.service") in removed
    assert ("schedule", "agroguia-schedule-tick.timer") in removed
    assert plan(replace(desired("A"), hosts=HOSTS), observed).empty


def test_plan_lines_name_the_units():
    _, p, _ = deployed("A", processes={"worker": "python manage.py process_queue", "mailer": "python mail.py"})
    start = next(s for s in p.steps if s.kind == "process")
    assert start.target.startswith("agroguia-{mailer,worker}@") and "with the new release" in start.reason
    assert shlex.split(start.target)  # one word
