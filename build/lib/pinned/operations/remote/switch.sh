#!/bin/sh
# nginx's upstream and `current` move together in one command, immune to a cut SSH connection (HUP); one
# command, no upload, so a host that stops answering here times out instead of hanging the run.
# $1 the upstream file, $2 the `current` link, $3 its new target (relative), $4 the history log, $5 the release
# switched from, $6 the release id, $7 who deploys, $8 the schema version's `served` marker (its database now
# takes the site's writes), $9 the upstream file's new text.
trap "" HUP
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
up=$1 current=$2 target=$3 history=$4 from=$5 rid=$6 by=$7 served=$8
mkdir -p "$(dirname "$up")"
printf "%s" "$9" > "$up.pinned-tmp"
nginx_install "$up"
atomic_link "$current" "$target" || { echo "pinned: current did not switch" >&2; exit 1; }
[ -e "$served" ] || touch "$served"
nginx_reload
printf "%s switch from=%s to=%s by=%s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$from" "$rid" "$by" >> "$history"
