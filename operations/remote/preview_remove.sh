#!/bin/sh
# Remove a preview from a web host: stop and disable its units, remove its unit files and nginx server, then
# reload systemd and (if its config passes its test) nginx. $1 its socket unit, $2 its service unit, $3... files.
socket_unit=$1 service_unit=$2
shift 2
systemctl disable --quiet --now "$socket_unit" "$service_unit" 2>/dev/null || true
# Before the files go: naming a unit after the daemon-reload would load a "not-found" stub of it.
systemctl reset-failed "$service_unit" "$socket_unit" 2>/dev/null || true
rm -f -- "$@" || exit 1
systemctl daemon-reload
if systemctl is-active --quiet nginx; then nginx -t 2>/dev/null && systemctl reload nginx; fi
exit 0
