#!/bin/sh
# Scheduled backups on the db host: enable (and restart, so a changed schedule applies) the timer, or
# disable it and remove its units and script. $1 the timer, $2 1 to enable / 0 to disable, $3… the files
# to remove (disable only). The backups themselves are never removed here.
set -eu
timer=$1 enable=$2
shift 2
systemctl daemon-reload
if [ "$enable" = 1 ]; then
    systemctl enable --quiet "$timer"
    systemctl restart "$timer"
else
    if systemctl cat "$timer" >/dev/null 2>&1; then systemctl disable --quiet --now "$timer"; fi
    rm -f -- "$@"
    systemctl daemon-reload
fi
