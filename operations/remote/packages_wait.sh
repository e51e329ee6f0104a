#!/bin/sh
# Wait for a background install of Debian packages (packages_start.sh; $1 its job folder) to end; on failure,
# apt's output on stderr and exit 1. $2 the deploy lock's undo hook for it, removed once it ended.
job=$1 undo=$2
pid=$(cat "$job/pid" 2>/dev/null)
while [ ! -e "$job/status" ]; do
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        [ -e "$job/status" ] && break
        rm -f "$undo"
        echo "pinned: the install of the packages ended without finishing (killed?); run the deploy again" >&2
        exit 1
    fi
    sleep 0.1
done
rm -f "$undo"
if [ "$(cat "$job/status")" != 0 ]; then
    echo "pinned: installing the packages failed (apt-get install, output below); nothing that needs them ran" >&2
    cat "$job/log" >&2
    exit 1
fi
