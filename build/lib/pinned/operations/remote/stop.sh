#!/bin/sh
# The old instance stops only once nginx has drained it: reloaded nginx keeps old workers until their
# requests finish ("nginx: worker process is shutting down"); wait for them (30 s at most).
# $1 its socket unit, $2 its service unit.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
i=0
while [ $i -lt 300 ] && pgrep -f "^nginx: worker process is shutting dow[n]" >/dev/null; do
    i=$((i+1)); sleep 0.1
done
stop_units "$1" "$2"
