#!/bin/sh
# A new release starts as hard links of the base release's code (never of what differs per release:
# assets/, the settings and runtime modules, the venv link, the metadata); then the links of deleted and changed files
# are removed (they are extracted anew): the base release's files are never written to.
# $1 the build folder, $2 the base release's folder, $3… the changed and deleted paths (relative).
building=$1 base=$2
shift 2
cp -al "$base/." "$building/"
# The base's links (build_links.sh) are not code: the new release gets its own.
if [ -f "$base/.pinned/links" ]; then
    while IFS= read -r link; do
        [ -n "$link" ] && rm -f -- "$building/$link"
    done <"$base/.pinned/links"
fi
rm -rf "$building/assets" "$building/.pinned" "$building/pinned_settings.py" "$building/pinned_runtime.py" \
    "$building/.venv"
mkdir -p "$building/.pinned"
for path in "$@"; do rm -f -- "$building/$path"; done
