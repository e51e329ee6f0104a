#!/bin/sh
# Only a finished build ($1) becomes the release's folder ($2). Its by-id link ($3 → $4, what the release's
# units start in) is made first: a run killed between the two leaves a dangling link to a release that is
# not on disk (the next run builds it again), never a release on disk without its link.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
atomic_link "$3" "$4" && rm -rf "$2" && mv -T "$1" "$2"
