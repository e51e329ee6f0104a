#!/bin/sh
# A rollout's canary, just switched: for $5 seconds, its health URL every second (on the new release's socket)
# and the share of 5xx answers among the site's requests that nginx logs meanwhile. Two failed health checks in
# a row, or more than $6 % 5xx (over at least 20 requests before the end; over all of them at the end), switch
# the host back to the release it served (its units still run: old releases stop after every switch) and exit 1,
# which stops the run before any other web host switches.
# $1 the new release's socket, $2 the Host header, $3 the health URL, $4 the site's access log, $5 seconds,
# $6 the most 5xx in percent, $7 the upstream file, $8 its text before the switch, $9 the `current` link,
# $10 its target before the switch, $11 the history log, $12 the new release, $13 the old one, $14 who deploys,
# $15 the old schema version's `served` marker.
trap "" HUP
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
sock=$1 host=$2 url=$3 log=$4 seconds=$5 max=$6
up=$7 old_up=$8 current=$9 old_target=${10} history=${11} new=${12} old=${13} by=${14} served=${15}
start=$(stat -c %s "$log" 2>/dev/null || echo 0)

# count: "REQUESTS ERRORS" in the log since the switch (the status follows the quoted request line)
count() {
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    [ "$size" -lt "$start" ] && start=0  # rotated meanwhile
    tail -c +"$((start + 1))" "$log" 2>/dev/null \
        | awk -F'"' 'NF >= 3 { split($3, f, " "); n++; if (f[1] ~ /^5/) e++ } END { print n + 0, e + 0 }'
}

# too_many N E MIN: more than $max % of N requests answered 5xx (only once N >= MIN)
too_many() {
    awk -v n="$1" -v e="$2" -v min="$3" -v max="$max" 'BEGIN { exit !(n >= min && n > 0 && e * 100 > max * n) }'
}

fail() {
    switch_release "$up" "$current" "$old_target" "$history" "$new" "$old" "$by" "$served" "$old_up"
    echo "pinned: canary failed: $1: switched back to release $old; no other web host switched" >&2
    exit 1
}

end=$(( $(date +%s) + seconds ))
misses=0
while [ "$(date +%s)" -lt "$end" ]; do
    if wait_healthy "$sock" "$host" "$url" 1; then misses=0; else misses=$((misses + 1)); fi
    [ "$misses" -ge 2 ] && fail "health check http://$host$url answered ${code:-nothing} twice in a row"
    read -r n e <<EOF_COUNT
$(count)
EOF_COUNT
    too_many "$n" "$e" 20 && fail "$e of $n requests answered 5xx in the watch (more than $max %)"
    sleep 1
done
read -r n e <<EOF_COUNT
$(count)
EOF_COUNT
too_many "$n" "$e" 1 && fail "$e of $n requests answered 5xx in the watch (more than $max %)"
echo "canary watched ${seconds} s: health 2xx, $e of $n requests answered 5xx (at most $max %)"
