#!/bin/sh
# Write the metadata of the release in $1 ($4's text, .pinned/release.json), then record in it when it was built
# (the host's clock) and the digest of its files' manifest, which release_files.py ($3's text) writes to
# .pinned/files.json: $2 is release_meta.py's text.
printf '%s\n' "$4" >"$1/.pinned/release.json" &&
    files=$(python3 -c "$3" write "$1") &&
    python3 -c "$2" "$1" "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "files=$files"
