"""The deploy lock: one run that changes an app's hosts at a time.

The lock is a file (state.layout.Layout.lock) holding who has it (user@machine, pid, since). Every
read-check-write of it happens under flock(1) on the host (operations/lock.py's scripts), so taking it
is atomic. A holder that died (a killed run on this same machine: its pid is gone) is taken over with a
warning; a holder elsewhere is refused with its name, and `pinned unlock` releases a lock by hand after
showing the holder. Hosts are asked in parallel.
"""

from __future__ import annotations

import json
import os
import socket
import time

import gevent

from operations.files import sh
from operations.lock import ACQUIRE_SCRIPT, RELEASE_SCRIPT


class LockRefused(Exception):
    pass


def holder_line(user: str) -> str:
    return json.dumps({"by": f"{user}@{socket.gethostname()}", "pid": os.getpid(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, sort_keys=True)


def describe(held: str) -> str:
    try:
        h = json.loads(held)
        return f"{h['by']} (pid {h['pid']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return held.strip() or "unknown"


def is_stale(held: str) -> bool:
    """A holder on this machine whose process is gone (a killed deploy)."""
    try:
        h = json.loads(held)
        if h["by"].split("@", 1)[1] != socket.gethostname():
            return False
        os.kill(int(h["pid"]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, KeyError, TypeError, IndexError, PermissionError):
        return False
    return False


def _run(host, script: str, *args: str) -> tuple[bool, str]:
    ok, output = host.run_shell_command(sh(script, *args))
    return ok, output.stdout.strip()


def _on_all(hosts, work) -> list:
    jobs = [gevent.spawn(work, h) for h in hosts]
    gevent.joinall(jobs, raise_error=True)
    return [job.value for job in jobs]


def acquire(hosts, path: str, ours: str, app: str) -> list[str]:
    """Take the lock on every host, or on none: returns warnings (stale locks taken over)."""

    def take(host):
        ok, held = _run(host, ACQUIRE_SCRIPT, path, ours, "")
        warning = None
        if not ok and held and is_stale(held):
            ok, again = _run(host, ACQUIRE_SCRIPT, path, ours, held)
            if ok:
                warning = f"{host.name}: took over the deploy lock of {describe(held)}: that run died"
            held = again or held
        return host, ok, held, warning

    results = _on_all(hosts, take)
    refused = [(host, held) for host, ok, held, _w in results if not ok]
    if refused:
        release(hosts, path, ours)
        host, held = refused[0]
        raise LockRefused(
            f"{host.name}: {app} is being deployed by {describe(held)}. Wait for it to finish; if that run "
            f"is dead, `pinned unlock --env <env>` releases the lock after showing it.")
    return [w for _h, _ok, _held, w in results if w]


def release(hosts, path: str, ours: str) -> None:
    """Release the lock where it is still ours."""
    _on_all(hosts, lambda host: _run(host, RELEASE_SCRIPT, path, ours))


def show(host, path: str) -> str | None:
    ok, output = host.run_shell_command(sh('cat "$1" 2>/dev/null || true', path))
    return output.stdout.strip() or None


def force_release(host, path: str) -> None:
    _run(host, RELEASE_SCRIPT, path, "")
