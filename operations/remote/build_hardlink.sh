#!/bin/sh
# A new release starts as hard links of the base release's code (never of what differs per release:
# the settings and runtime modules, the venv link, the metadata); then the links of deleted and changed files
# are removed (they are extracted anew): the base release's files are never written to.
# Its assets/ (collectstatic's output) are the base's too, as hard links, only when $3 is "linked": the plan found
# that nothing collectstatic reads changed (state/static.py), so the base's record of its sources comes along;
# otherwise the new release's collectstatic makes them.
# The build folder is made anew first (what build_prepare.sh does when there is no base).
# $1 the build folder, $2 the base release's folder, $3 "linked" or "", $4… the changed and deleted paths (relative).
building=$1 base=$2 static=$3
shift 3
if [ "$static" = linked ] && ! { [ -d "$base/assets" ] && [ -f "$base/.pinned/static_sources.json" ]; }; then
    echo "pinned: $base has no assets/ or no record of its static files' sources any more: run again (the plan will run collectstatic)" >&2
    exit 1
fi
rm -rf "$building" && mkdir -p "$building" && cp -al "$base/." "$building/" || exit 1
# The base's links (build_links.sh) are not code: the new release gets its own.
if [ -f "$base/.pinned/links" ]; then
    while IFS= read -r link; do
        [ -n "$link" ] && rm -f -- "$building/$link"
    done <"$base/.pinned/links"
fi
rm -rf "$building/.pinned" "$building/pinned_settings.py" "$building/pinned_runtime.py" "$building/.venv"
mkdir -p "$building/.pinned"
if [ "$static" = linked ]; then
    cp -p "$base/.pinned/static_sources.json" "$building/.pinned/static_sources.json" || exit 1
else
    rm -rf "$building/assets"
fi
for path in "$@"; do rm -f -- "$building/$path"; done
