"""End to end (one host): a release's worker and a scheduled command, and the commands of daily work.

* The example's worker (`manage.py process_queue`, a loop over the queue table crops.Job) and its scheduled
  command (`manage.py tick`) run from the current release: each job records the code's release label and the
  release id its process runs in (PINNED_RELEASE); the timer's service is started with `systemctl start`
  rather than waiting for the calendar.
* After a switch (A → B) and a rollback (B → A) they run that release's code; the old release's worker is
  stopped after the switch (and was not rebuilt for the rollback).
* A worker that fails to start fails the deploy before the switch: current unchanged, HTTP still answered by
  the old release, whose worker still processes jobs.
* `pinned manage -- …` runs in the current release with its environment and returns the command's exit status;
  `pinned logs` prints the worker's lines prefixed by the host; `pinned status` shows the units and the timer's
  last run. Removing the process and the schedule stops and removes their units.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from conftest import ROOT, Env, http_get
from pinned.state.processes import runner

pytestmark = pytest.mark.sandbox
HOST = "procs"
APP = "agroguia"
WORKER = "python manage.py process_queue --interval 0.2"
SCHEDULE = [{"name": "tick", "command": "manage.py tick", "on_calendar": "*-*-* 03:00:00"}]


def release_id(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("procs", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"],
              processes={"worker": WORKER}, schedule=SCHEDULE, env={"GREETING": "hola $HOME 'x'"})
    env.deploy()
    return env


def sql(sandbox, query: str) -> str:
    """A query on the current schema's database (one SSH round trip)."""
    database = f"{APP}_v$(readlink /srv/{APP}/current | cut -d/ -f2)"
    return sandbox.ssh(HOST, f"mysql -N -B {database} -e \"{query}\"").stdout.strip()


def wait_for(check, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def processed_by(sandbox, text: str) -> tuple[str, str]:
    """Queue a job, wait until the worker has done it: (release label, release id) it recorded."""
    sql(sandbox, f"INSERT INTO crops_job (text, \\`release\\`, release_id) VALUES ('{text}', '', '')")
    row = wait_for(lambda: sql(sandbox, f"SELECT \\`release\\`, release_id FROM crops_job WHERE text = '{text}' "
                                        "AND done IS NOT NULL"), f"job {text} to be processed")
    label, rid = row.split("\t")
    return label, rid


def tick(sandbox) -> tuple[str, str]:
    """Run the scheduled command now (its timer's service), return what its job recorded."""
    before = sql(sandbox, "SELECT COALESCE(MAX(id), 0) FROM crops_job WHERE text = 'tick'")
    sandbox.ssh(HOST, f"systemctl start {APP}-schedule-tick.service")  # oneshot: returns when it is done
    row = sql(sandbox, f"SELECT \\`release\\`, release_id FROM crops_job WHERE text = 'tick' AND id > {before}")
    assert row, "the scheduled command recorded nothing"
    label, rid = row.split("\t")
    return label, rid


def active(sandbox, unit: str) -> str:
    return sandbox.ssh(HOST, f"systemctl is-active {unit}", check=False).stdout.strip()


def test_worker_and_schedule_run_from_the_current_release(env, sandbox, commits):
    a = release_id(commits, "A")
    assert processed_by(sandbox, "first") == ("A", a)
    assert tick(sandbox) == ("A", a)
    unit = f"{APP}-worker@{a}.service"
    shown = sandbox.ssh(HOST, f"systemctl show -p User -p ProtectSystem -p NoNewPrivileges -p TimeoutStopUSec {unit}"
                        ).stdout
    assert "User=agroguia" in shown and "ProtectSystem=strict" in shown and "NoNewPrivileges=yes" in shown
    assert "TimeoutStopUSec=30s" in shown
    # systemd read the unit's quoted ExecStart back as one argument, the script pinned wrote (`"` unescaped; it
    # shows `$$` as stored, turned into `$` when it runs: the release id recorded above came through it).
    exec_start = sandbox.ssh(HOST, f"systemctl show -p ExecStart {unit}").stdout
    assert f"argv[]=/bin/sh -c {runner(WORKER).replace('$', '$$')} ;" in exec_start, exec_start
    assert sandbox.ssh(HOST, f"systemctl is-enabled {APP}-schedule-tick.timer").stdout.strip() == "enabled"


def test_after_a_switch_and_a_rollback_they_run_that_releases_code(env, sandbox, commits):
    a, b = release_id(commits, "A"), release_id(commits, "B")
    env.write(release=commits["B"]["commit"])
    plan = env.deploy().stdout  # the plan is printed first
    assert re.search(rf"\+ process +{re.escape(APP)}-{{worker}}@{b}", plan), plan
    assert re.search(rf"- process-stop +{re.escape(APP)}-\*@{a}", plan), plan
    assert processed_by(sandbox, "after-switch") == ("B", b)
    assert tick(sandbox) == ("B", b)
    assert active(sandbox, f"{APP}-worker@{a}.service") == "inactive"  # stopped after the switch
    log = sandbox.ssh(HOST, f"journalctl -u {APP}-worker@{a}.service -o cat --no-pager").stdout
    assert "worker of release A stopping (SIGTERM)" in log  # a graceful stop: the loop ended on SIGTERM
    # Rollback: A's files are on disk; its worker starts again, nothing is built.
    env.write(release=commits["A"]["commit"])
    out = env.deploy().stdout
    assert "+ release" not in out
    assert processed_by(sandbox, "after-rollback") == ("A", a)
    assert tick(sandbox) == ("A", a)
    assert active(sandbox, f"{APP}-worker@{b}.service") == "inactive"


def test_a_worker_that_fails_to_start_fails_the_deploy_before_the_switch(env, sandbox, commits):
    a, b = release_id(commits, "A"), release_id(commits, "B")
    env.write(release=commits["B"]["commit"], processes={"worker": "python manage.py no_such_command"})
    failed = env.deploy(check=False)
    assert failed.returncode != 0
    assert f"process {APP}-worker@{b}.service of release {b} did not keep running" in failed.stdout + failed.stderr
    assert sandbox.ssh(HOST, f"readlink /srv/{APP}/current").stdout.strip().endswith(a)  # not switched
    home = http_get(f"http://{sandbox.booted[HOST].address}/")
    assert home.status == 200 and "Release: A" in home.body, home.body[:300]
    assert active(sandbox, f"{APP}-worker@{b}.service") != "active"
    # The old release's worker kept running its own command and still processes jobs.
    assert processed_by(sandbox, "during-failure") == ("A", a)
    # Put back: converges on A again, the worker's unit restarted with the right command.
    env.write(release=commits["A"]["commit"], processes={"worker": WORKER})
    env.deploy()
    assert processed_by(sandbox, "after-repair") == ("A", a)
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_manage_runs_in_the_current_release_with_its_environment(env, sandbox, commits):
    a = release_id(commits, "A")
    ok = env.pinned("manage", "--", "check", "--deploy", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "System check identified" in ok.stdout + ok.stderr
    shown = env.pinned("manage", "--", "shell", "-c",
                       "import os, crops.release as r; print('R', r.RELEASE, os.environ['PINNED_RELEASE'], "
                       "os.environ['GREETING'], os.getuid() != 0)")
    assert f"R A {a} hola $HOME 'x' True" in shown.stdout, shown.stdout + shown.stderr
    bogus = env.pinned("manage", "--", "no_such_command", check=False)
    assert bogus.returncode == 1 and "Unknown command" in bogus.stderr + bogus.stdout
    # `pinned shell` with a stdin that is not a terminal: read as the shell's input.
    piped = subprocess.run([str(ROOT / ".venv" / "bin" / "pinned"), "--env", env.name, "--limit", HOST, "shell"],
                           input="import os\nprint('via shell', 6 * 7, os.environ['PINNED_RELEASE'])\n",
                           capture_output=True, text=True, timeout=120, cwd=ROOT,
                           env={**os.environ, "PINNED_STATE_DIR": str(env.state_dir)})
    assert piped.returncode == 0 and f"via shell 42 {a}" in piped.stdout, piped.stdout + piped.stderr


def test_logs_and_status(env, sandbox, commits):
    a = release_id(commits, "A")
    processed_by(sandbox, "for-the-logs")
    logs = env.pinned("logs", "--process", "worker", "-n", "500")
    lines = [line for line in logs.stdout.splitlines() if "processed job" in line]
    assert lines and all(line.startswith(f"{HOST}: ") for line in lines), logs.stdout[-2000:]
    assert any("(for-the-logs) with release A" in line for line in lines)
    every = env.pinned("logs", "--since", "-1h").stdout
    assert all(line.startswith(f"{HOST}: ") for line in every.splitlines())
    tick(sandbox)
    status = env.pinned("status").stdout
    assert f"current {a}" in status and re.search(rf"{APP}-worker@{a}\.service +active/running", status), status
    assert re.search(rf"{APP}-schedule-tick\.timer +active; last run \S.*: success \(exit 0\)", status), status
    assert re.search(r"disk: versions [0-9.]+ MiB, venvs [0-9.]+ MiB", status), status
    assert re.search(rf"databases {APP}_v0 [0-9.]+ KiB", status), status


def test_removed_processes_and_schedules_are_stopped_and_removed(env, sandbox, commits):
    a = release_id(commits, "A")
    env.write(processes={}, schedule=[])
    env.deploy()
    assert active(sandbox, f"{APP}-worker@{a}.service") == "inactive"
    left = sandbox.ssh(HOST, f"ls /etc/systemd/system/ | grep '^{APP}-' || true").stdout.split()
    assert left == [], left
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
