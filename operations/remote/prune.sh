#!/bin/sh
# Remove a release (its units, its by-id link, its folder), a leftover build or an unused venv.
# $1 the app, $2 the app root, $3 the release id ("" for a leftover build or a venv), $4 the path.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
app=$1 root=$2 rid=$3 path=$4
refuse() { echo "pinned: refusing to remove $path" >&2; exit 1; }
# Only <root>/versions/<N>/<name> or <root>/venvs/<name>, each part one plain name (not empty, . or ..).
case "$path" in "$root"/versions/*/*|"$root"/venvs/*) ;; *) refuse;; esac
below=${path#"$root"/}
case "/$below/" in *//*|*/./*|*/../*) refuse;; esac
case "$below" in versions/*/*/*|venvs/*/*) refuse;; esac
if [ -n "$rid" ]; then
    stop_units "$app" "$rid" 2>/dev/null || true
    rm -f "$root/by-id/$rid"
fi
rm -rf -- "$path"
