"""The deploy lock's scripts and the operation that releases it at the end of a deploy (the engine's
side of the lock — taking it on every host, refusing, taking over — is pinned/lock.py)."""

from __future__ import annotations

from pyinfra.api import operation

from .files import sh

# $1 lock file, $2 our holder line, $3 the holder line we may replace (stale), or "".
ACQUIRE_SCRIPT = r'''
exec 9>"$1.guard"
flock -w 10 9 || { echo "cannot get $1.guard"; exit 4; }
if [ -s "$1" ]; then
    held=$(cat "$1")
    if [ "$held" != "$3" ]; then printf "%s\n" "$held"; exit 3; fi
fi
printf "%s\n" "$2" > "$1.tmp" && mv -f "$1.tmp" "$1"
'''
# Remove the lock only if it is still ours (or, by hand, whoever holds it: $2 = "").
RELEASE_SCRIPT = r'''
exec 9>"$1.guard"
flock -w 10 9 || exit 4
if [ -z "$2" ] || [ "$(cat "$1" 2>/dev/null)" = "$2" ]; then rm -f "$1"; fi
'''


@operation()
def release(path: str, ours: str):
    """Release this run's deploy lock (last step of a deploy)."""
    yield sh(RELEASE_SCRIPT, path, ours)
