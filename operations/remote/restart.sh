#!/bin/sh
# Restart the current release's service for a changed env or secret: systemd re-reads its EnvironmentFile=s.
# Its socket stays open (it is systemd's): a request arriving meanwhile waits in the socket's queue and is
# answered by the restarted service; gunicorn finishes the requests it holds before it stops. Then the health
# URL must answer 2xx (the release is not marked failed: its code did not change, its configuration did).
# $1 the service unit, $2 its socket, $3 the Host header, $4 the health URL, $5 the release id.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
systemctl restart "$1" || { journalctl -u "$1" -n 30 --no-pager -o cat >&2; exit 1; }
wait_healthy "$2" "$3" "$4" 120 && exit 0
echo "pinned: after restarting release $5 for its new configuration, http://$3$4 answered ${code:-nothing}." \
     "Its log:" >&2
journalctl -u "$1" -n 30 --no-pager -o cat >&2
exit 1
