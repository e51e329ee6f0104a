#!/bin/sh
# nginx's upstream and `current` move together in one command, immune to a cut SSH connection (HUP).
# $1 the upstream file (its new text uploaded beside it as .pinned-tmp), $2 the `current` link, $3 its new
# target (relative), $4 the history log, $5 the release switched from, $6 the release id, $7 who deploys,
# $8 the schema version's `served` marker (its database now takes the site's writes).
trap "" HUP
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
up=$1 current=$2 target=$3 history=$4 from=$5 rid=$6 by=$7 served=$8
nginx_install "$up"
atomic_link "$current" "$target" || { echo "pinned: current did not switch" >&2; exit 1; }
[ -e "$served" ] || touch "$served"
nginx_reload
printf "%s switch from=%s to=%s by=%s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$from" "$rid" "$by" >> "$history"
