"""The deploy lock: one deploy of an app at a time on each host.

The lock is a file, /run/lock/pinned-<app>.lock, holding who has it (user@machine, pid, since). Every
read-check-write of it happens under flock(1) on the host, so taking it is atomic. A holder that died (a
killed run on this same machine: its pid is gone) is taken over with a warning; a holder elsewhere is
refused with its name, and `pinned unlock` releases a lock by hand after showing the holder.
"""

from __future__ import annotations

import json
import os
import socket
import time

from pyinfra.api import operation

from .files import sh
from .scripts import script

# $1 lock file, $2 our holder line, $3 the holder line we may replace (stale), or "".
ACQUIRE_SCRIPT = script("lock_acquire.sh")
# Remove the lock only if it is still ours (or, by hand, whoever holds it: $2 = "").
RELEASE_SCRIPT = script("lock_release.sh")


class LockRefused(Exception):
    pass


def lock_path(app: str) -> str:
    return f"/run/lock/pinned-{app}.lock"


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


def _run(host, script: str, *args: str):
    ok, output = host.run_shell_command(sh(script, *args))
    return ok, output.stdout.strip()


def acquire(hosts, app: str, ours: str) -> list[str]:
    """Take the lock on every host, or none: returns warnings (stale locks taken over)."""
    path, taken, warnings = lock_path(app), [], []
    for host in hosts:
        ok, held = _run(host, ACQUIRE_SCRIPT, path, ours, "")
        if not ok and held and is_stale(held):
            ok, again = _run(host, ACQUIRE_SCRIPT, path, ours, held)
            if ok:
                warnings.append(f"{host.name}: took over the deploy lock of {describe(held)}: that run died")
            held = again or held
        if not ok:
            for other in taken:
                _run(other, RELEASE_SCRIPT, path, ours)
            raise LockRefused(
                f"{host.name}: {app} is being deployed by {describe(held)}. Wait for it to finish; if that run "
                f"is dead, `pinned unlock --env <env>` releases the lock after showing it.")
        taken.append(host)
    return warnings


def release_now(hosts, app: str, ours: str) -> None:
    for host in hosts:
        _run(host, RELEASE_SCRIPT, lock_path(app), ours)


def show(host, app: str) -> str | None:
    ok, output = host.run_shell_command(sh('cat "$1" 2>/dev/null || true', lock_path(app)))
    return output.stdout.strip() or None


def force_release(host, app: str) -> None:
    _run(host, RELEASE_SCRIPT, lock_path(app), "")


@operation()
def release(app: str, ours: str):
    """Release this run's deploy lock (last step of a deploy)."""
    yield sh(RELEASE_SCRIPT, lock_path(app), ours)
