#!/bin/sh
# Point the symlink $1 at $2 atomically (it is never missing), then verify it.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
atomic_link "$1" "$2"
