"""The virtualenv's background build (operations/remote/venv_*.sh), run here on real files and processes: started
detached, waited for, marked ready only on success, stopped by the deploy lock's undo hook. The build itself
(python3 -m venv + pip) is replaced by small scripts that follow venv_build.sh's protocol (pid first, then the
log, then the status by a rename); the real one runs on the sandbox hosts (tests/test_first_deploy.py)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from pinned.operations.release import venv_start_command
from pinned.operations.scripts import run_sh, script

PROTOCOL = ('venv=$1; echo $$ > "$venv/.pinned-build.pid.tmp" && '
            'mv -f "$venv/.pinned-build.pid.tmp" "$venv/.pinned-build.pid"\n')


def finish(log: str, status: int) -> str:
    return (PROTOCOL + f"printf '%s\\n' '{log}' > \"$venv/.pinned-build.log\"; sleep 0.3\n"
            f"echo {status} > \"$venv/.pinned-build.status.tmp\" && mv -f \"$venv/.pinned-build.status.tmp\" "
            "\"$venv/.pinned-build.status\"\n")


HANGS = PROTOCOL + "sleep 300 & wait\n"  # a build that waits on something (an index that never answers)


def sh(command) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60)


def start(tmp_path: Path, build: str, name: str = "abc") -> tuple[Path, Path, subprocess.CompletedProcess]:
    """venv_start.sh as operations/release.py runs it, with `build` in place of venv_build.sh's text."""
    venv, undo = tmp_path / "venvs" / name, tmp_path / "lock.undo.d" / f"venv-{name}"
    proc = subprocess.run(["sh", "-c", _with_build(str(venv), str(undo), build)], capture_output=True, text=True,
                          timeout=60)
    return venv, undo, proc


def test_the_operation_sends_venv_build_and_the_stop_hook():
    text = venv_start_command("/srv/a/venvs/abc", "Django", ("gunicorn>=25",), "/run/lock/x.undo.d/venv-abc")
    assert text.get_raw_value() == _with_build("/srv/a/venvs/abc", "/run/lock/x.undo.d/venv-abc",
                                               script("venv_build.sh"), "Django")


def _with_build(venv: str, undo: str, build: str, requirements: str = "Django>=5.2") -> str:
    hook = run_sh("venv_stop.sh", venv).get_raw_value()
    return run_sh("venv_start.sh", venv, requirements, undo, hook, build, "gunicorn>=25").get_raw_value()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait(venv: Path, undo: Path) -> subprocess.CompletedProcess:
    return sh(run_sh("venv_wait.sh", str(venv), str(undo)))


def test_start_returns_at_once_and_the_build_runs_detached(tmp_path):
    began = time.monotonic()
    venv, undo, proc = start(tmp_path, HANGS)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - began < 5  # it did not wait for a build of 300 s
    assert (venv / "requirements.txt").read_text() == "Django>=5.2\n"
    pid = int((venv / ".pinned-build.pid").read_text())
    assert alive(pid) and os.getpgid(pid) == pid  # leads its own process group
    assert undo.exists() and str(venv) in undo.read_text()
    # The lock's holder runs the hook when the run ends first: the whole build stops, nothing is marked.
    subprocess.run(["sh", str(undo)], check=True, timeout=30)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert not (venv / ".pinned-ready").exists() and not (venv / ".pinned-build.status").exists()


def test_a_successful_build_is_marked_ready_and_its_hook_goes(tmp_path):
    venv, undo, proc = start(tmp_path, finish("installed", 0))
    assert proc.returncode == 0, proc.stderr
    assert not (venv / ".pinned-ready").exists()  # not before it finished
    done = wait(venv, undo)
    assert done.returncode == 0, done.stderr
    assert (venv / ".pinned-ready").exists() and not undo.exists()


def test_a_failed_build_fails_with_pips_output_and_is_never_ready(tmp_path):
    venv, undo, _ = start(tmp_path, finish("ERROR: No matching distribution found for nope==1.0", 1))
    done = wait(venv, undo)
    assert done.returncode == 1
    assert "pinned: building the virtualenv" in done.stderr and "not marked ready" in done.stderr
    assert "ERROR: No matching distribution found for nope==1.0" in done.stderr
    assert not (venv / ".pinned-ready").exists() and not undo.exists()


def test_a_build_that_died_without_a_status_fails_the_wait(tmp_path):
    venv, undo, _ = start(tmp_path, HANGS)
    pid = int((venv / ".pinned-build.pid").read_text())
    os.killpg(pid, 9)
    done = wait(venv, undo)
    assert done.returncode == 1 and "ended without finishing" in done.stderr
    assert not (venv / ".pinned-ready").exists()


def test_starting_again_stops_the_build_a_killed_run_left(tmp_path):
    venv, undo, _ = start(tmp_path, HANGS)
    old = int((venv / ".pinned-build.pid").read_text())
    venv, undo, proc = start(tmp_path, finish("installed", 0))
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 5
    while alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(old)
    assert wait(venv, undo).returncode == 0 and (venv / ".pinned-ready").exists()
