#!/bin/sh
# Start a preview's socket and service (restart the service when its release changed), then ask its health
# URL on its own socket until it answers 2xx. A preview that fails is stopped; `current` is never touched.
# $1 its socket unit, $2 its service unit, $3 1 to restart, $4 its socket, $5 the Host header, $6 the health URL.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
systemctl enable --quiet --now "$1" || exit 1
if [ "$3" = 1 ]; then systemctl restart "$2" || exit 1; else systemctl start "$2" || exit 1; fi
wait_healthy "$4" "$5" "$6" 60 && exit 0
stop_units "$1" "$2" 2>/dev/null
echo "pinned: preview health check failed: http://$5$6 on $2 answered ${code:-nothing} (stopped; current is" \
     "unchanged). Its log:" >&2
journalctl -u "$2" -n 30 --no-pager -o cat >&2
exit 1
