#!/bin/sh
# A release that fails its health check is marked failed, its instance stopped; `current` is untouched.
# $1 its socket, $2 the Host header, $3 the health URL, $4 its socket unit, $5 its service unit, $6 its
# folder, $7 release_meta.py's text, $8 the release id.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
sock=$1 host=$2 url=$3 socket_unit=$4 service_unit=$5 release_dir=$6 rid=$8
wait_healthy "$sock" "$host" "$url" 60 && exit 0
stop_units "$socket_unit" "$service_unit" 2>/dev/null
python3 -c "$7" "$release_dir" status=failed "failure=health check answered ${code:-nothing}"
echo "pinned: health check failed: http://$host$url on release $rid answered ${code:-nothing}" \
     "(the release is marked failed; current is unchanged). Its log:" >&2
journalctl -u "$service_unit" -n 30 --no-pager -o cat >&2
exit 1
