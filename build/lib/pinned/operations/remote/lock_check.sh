#!/bin/sh
# Fail unless this run still holds the deploy lock: $1 the lock file, $2 the holder line our holder wrote
# (with its holder_pid). The holder removes the file when it ends (timed out while the run was blocked,
# e.g. at pyinfra's confirmation question, or ended by `pinned unlock`), and a held flock proves it alive.
if [ "$(cat "$1" 2>/dev/null)" = "$2" ] && ! flock -n "$1" true; then exit 0; fi
echo "this run no longer holds the deploy lock $1 (now: $(cat "$1" 2>/dev/null || echo none)):" \
    "nothing more is changed; run the deploy again" >&2
exit 1
