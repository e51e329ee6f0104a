#!/bin/sh
# Start (or restart) a release's processes before the switch, and wait the settle time: each must still be
# running and never restarted by then (Restart=on-failure hides a crash loop behind "active"). One that is
# not fails the deploy like a failed health check: the release's processes and web units are stopped and
# it is marked failed; `current` is untouched.
# $1 the release id, $2 its folder, $3 1 to restart (the current release's, for a changed configuration),
# $4 settle seconds, $5 $6 its web socket and service units, $7 release_meta.py's text, $8… the process units.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
rid=$1 release_dir=$2 restart=$3 settle=$4 socket_unit=$5 service_unit=$6 meta=$7
shift 7
if [ "$restart" = 1 ]; then
    systemctl enable --quiet "$@" && systemctl restart "$@"
else
    systemctl enable --quiet "$@" && systemctl start "$@"
fi
ok=$?
i=0
while [ "$ok" = 0 ] && [ "$i" -lt $((settle * 10)) ]; do
    for unit in "$@"; do
        state=$(systemctl show -p ActiveState --value "$unit")
        restarts=$(systemctl show -p NRestarts --value "$unit")
        if [ "$state" != active ] || [ "${restarts:-0}" != 0 ]; then
            ok=1 bad=$unit
            break
        fi
    done
    i=$((i+1)); sleep 0.1
done
[ "$ok" = 0 ] && exit 0
for unit in "$@"; do
    systemctl disable --quiet --now "$unit" 2>/dev/null
done
if [ "$restart" = 0 ]; then
    if [ -n "$socket_unit" ]; then
        stop_units "$socket_unit" "$service_unit" 2>/dev/null
    fi
    python3 -c "$meta" "$release_dir" status=failed "failure=process ${bad:-$1} did not keep running"
    echo "pinned: process ${bad:-$1} of release $rid did not keep running for ${settle} s (the release is marked" \
         "failed; current is unchanged). Its log:" >&2
else
    echo "pinned: process ${bad:-$1} of release $rid did not keep running for ${settle} s after its restart. Its log:" >&2
fi
journalctl -u "${bad:-$1}" -n 30 --no-pager -o cat >&2
exit 1
