#!/bin/sh
# Restart the current release's service for a changed env or secret: systemd re-reads its EnvironmentFile=s.
# Its socket stays open (it is systemd's): a request arriving meanwhile waits in the socket's queue and is
# answered by the restarted service; gunicorn finishes the requests it holds before it stops. Then the health
# URL must answer 2xx (the release is not marked failed: its code did not change, its configuration did).
# $1 the service unit, $2 its socket, $3 the Host header, $4 the health URL, $5 the release id.
systemctl restart "$1" || { journalctl -u "$1" -n 30 --no-pager -o cat >&2; exit 1; }
i=0
while [ $i -lt 120 ]; do
    code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 --unix-socket "$2" -H "Host: $3" \
           "http://localhost$4")
    case "$code" in 2??) exit 0;; esac
    i=$((i+1)); sleep 0.25
done
echo "pinned: after restarting release $5 for its new configuration, http://$3$4 answered ${code:-nothing}." \
     "Its log:" >&2
journalctl -u "$1" -n 30 --no-pager -o cat >&2
exit 1
