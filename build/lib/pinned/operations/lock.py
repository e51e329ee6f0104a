"""The deploy lock's remote scripts and the operation that checks, at the start of each phase of a deploy, that
the run still holds it. Taking and releasing the lock (a holder process per host, tied to the run's SSH
connection) is the engine's side: pinned/lock.py."""

from __future__ import annotations

from pyinfra.api import operation

from .scripts import run_sh, script

# Held for as long as the run is connected: $1 lock file, $2 our holder line (JSON), $3 heartbeat timeout (s).
# Prints "held <line>" (the line it wrote, with its holder_pid) or "refused <their line>" (exit 3).
HOLD_SCRIPT = script("lock_hold.sh")
# `pinned unlock`: ends the holder of lock $1 (its undo hook runs), or cleans up after a dead one.
UNLOCK_SCRIPT = script("lock_unlock.sh")


@operation()
def check(path: str, line: str):
    """Fail (and so stop the run on every host) unless the lock `path` still holds our holder `line`."""
    yield run_sh("lock_check.sh", path, line)
