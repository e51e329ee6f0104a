"""The deploy lock's scripts and the operation that releases it at the end of a deploy (the engine's
side of the lock — taking it on every host, refusing, taking over — is pinned/lock.py)."""

from __future__ import annotations

from pyinfra.api import operation

from .files import sh
from .scripts import script

# $1 lock file, $2 our holder line, $3 the holder line we may replace (stale), or "".
ACQUIRE_SCRIPT = script("lock_acquire.sh")
# Remove the lock only if it is still ours (or, by hand, whoever holds it: $2 = "").
RELEASE_SCRIPT = script("lock_release.sh")


@operation()
def release(path: str, ours: str):
    """Release this run's deploy lock (last step of a deploy)."""
    yield sh(RELEASE_SCRIPT, path, ours)
