#!/bin/sh
# Record a schema version on a web host: $1 versions/<N>, $2 the JSON to write to its schema.json.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
atomic_write "$1/schema.json" "$1/.schema.json.tmp" "$2"
