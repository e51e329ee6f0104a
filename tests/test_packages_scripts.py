"""A bare host's background install of Debian packages (operations/remote/packages_*.sh), run here on real files
and processes with a stand-in `apt-get` first in PATH (it records its arguments, says something, sleeps, exits
with the status asked for): started detached, waited for, its failure shown with apt's output, and the deploy
lock's undo hook holding the lock until the install ended (dpkg is never stopped half-way). The real apt-get runs
on the sandbox's bare host (tests/test_fresh_server.py)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from test_venv_scripts import alive

from pinned.operations.scripts import run_sh
from pinned.operations.system import packages_start_command

FAKE_APT = """#!/bin/sh
printf '%s\\n' "$*" > "$FAKE_DIR/args"
echo "Reading package lists..."
[ "$FAKE_STATUS" = 0 ] || echo "E: Unable to locate package nope"
sleep "$FAKE_SECONDS"
touch "$FAKE_DIR/finished"
exit "$FAKE_STATUS"
"""


def env(tmp_path: Path, seconds: float, status: int) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text(FAKE_APT)
    (bin_dir / "apt-get").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path),
            "FAKE_SECONDS": str(seconds), "FAKE_STATUS": str(status)}


def start(tmp_path: Path, seconds: float, status: int = 0, packages=("nginx", "mariadb-server")):
    job, undo = tmp_path / "job", tmp_path / "lock.undo.d" / "packages"
    began = time.monotonic()
    proc = subprocess.run(["sh", "-c", packages_start_command(tuple(packages), str(job), str(undo)).get_raw_value()],
                          capture_output=True, text=True, timeout=60, env=env(tmp_path, seconds, status))
    return job, undo, proc, time.monotonic() - began


def wait(job: Path, undo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", run_sh("packages_wait.sh", str(job), str(undo)).get_raw_value()],
                          capture_output=True, text=True, timeout=60)


def test_start_returns_at_once_and_the_wait_sees_the_install_succeed(tmp_path):
    job, undo, proc, took = start(tmp_path, seconds=1.5)
    assert proc.returncode == 0, proc.stderr
    assert took < 1.5 and not (tmp_path / "finished").exists()  # it did not wait for the install
    pid = int((job / "pid").read_text())
    assert alive(pid) and os.getpgid(pid) == pid  # its own session and process group
    assert undo.exists() and str(job) in undo.read_text()
    done = wait(job, undo)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "finished").exists() and not undo.exists()
    args = (tmp_path / "args").read_text().split()
    assert args[0] == "install" and args[-2:] == ["nginx", "mariadb-server"] and "DPkg::Lock::Timeout=600" in args


def test_a_failed_install_fails_the_wait_with_apts_output(tmp_path):
    job, undo, _, _ = start(tmp_path, seconds=0.2, status=100, packages=("nope",))
    done = wait(job, undo)
    assert done.returncode == 1
    assert "pinned: installing the packages failed" in done.stderr
    assert "E: Unable to locate package nope" in done.stderr and not undo.exists()


def test_an_install_that_died_without_a_status_fails_the_wait(tmp_path):
    job, undo, _, _ = start(tmp_path, seconds=30)
    pid = int((job / "pid").read_text())
    os.killpg(pid, 9)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    done = wait(job, undo)
    assert done.returncode == 1 and "ended without finishing" in done.stderr


def test_the_undo_hook_of_a_run_that_ended_first_waits_for_the_install_and_never_stops_it(tmp_path):
    job, undo, _, _ = start(tmp_path, seconds=2)
    pid = int((job / "pid").read_text())
    assert alive(pid) and not (tmp_path / "finished").exists()  # the install runs when the hook starts
    began = time.monotonic()
    subprocess.run(["sh", str(undo)], check=True, timeout=60)  # as the lock's holder runs it
    assert time.monotonic() - began > 1  # it held on while the install ran
    assert (tmp_path / "finished").exists() and (job / "status").read_text().strip() == "0"  # ran to its end
