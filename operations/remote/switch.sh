#!/bin/sh
# nginx's upstream and `current` move together in one command, immune to a cut SSH connection (HUP); one
# command, no upload, so a host that stops answering here times out instead of hanging the run.
# $1 the upstream file, $2 the `current` link, $3 its new target (relative), $4 the history log, $5 the release
# switched from, $6 the release id, $7 who deploys, $8 the schema version's `served` marker (its database now
# takes the site's writes), $9 the upstream file's new text.
trap "" HUP
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
switch_release "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9"
