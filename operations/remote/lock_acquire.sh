#!/bin/sh
# Take the deploy lock: $1 lock file, $2 our holder line, $3 the holder line we may replace (stale), or "".
# Exits 3 printing the holder when someone else has it, 4 when the guard cannot be had.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
exec 9>"$1.guard"
flock -w 10 9 || { echo "cannot get $1.guard"; exit 4; }
if [ -s "$1" ]; then
    held=$(cat "$1")
    if [ "$held" != "$3" ]; then printf "%s\n" "$held"; exit 3; fi
fi
atomic_write "$1" "$1.tmp" "$2"
