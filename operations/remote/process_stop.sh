#!/bin/sh
# Stop and disable processes (systemd sends SIGTERM and waits up to each unit's TimeoutStopSec, then
# SIGKILL), then remove unit files of processes no longer declared.
# $1 how many units follow, then the units, then the files to remove.
n=$1
shift
units=
while [ "$n" -gt 0 ]; do
    units="$units $1"
    shift; n=$((n-1))
done
# shellcheck disable=SC2086  # unit names: no spaces (checked by the state file)
if [ -n "$units" ]; then systemctl disable --quiet --now $units; fi
if [ $# -gt 0 ]; then
    rm -f -- "$@"
    systemctl daemon-reload
    systemctl reset-failed 2>/dev/null || true
fi
