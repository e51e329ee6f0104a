#!/bin/sh
# Start a release's socket and service: $1 its socket unit, $2 its service unit; $3 its warm timer (or ""):
# a release kept warm after a switch is already running, its timer is cancelled first (so it cannot stop it);
# $4 "restart": it runs with another env or secrets than now, so its service is restarted instead.
# The socket is enabled only if it is not yet (each `systemctl enable` has systemd reload its units).
if [ -n "$3" ]; then systemctl stop "$3" 2>/dev/null || true; fi
systemctl is-enabled --quiet "$1" || systemctl enable --quiet "$1" || exit 1
if [ "$4" = restart ]; then
    systemctl start "$1" && systemctl restart "$2"
else
    systemctl start "$1" "$2"
fi
