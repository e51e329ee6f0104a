#!/bin/bash
# Back up a web host's shared folders (uploads): one compressed tar of the folders $3… of $2
# (/srv/<app>/shared), owners and modes kept, into the app's backups folder $1 (root-only), written under a
# temporary name and renamed when complete and checked (gzip -t), so a half-written one never lists.
# Prints one line: `<id> <bytes>`; the id is `<UTC time>-shared.tar.gz`. bash for pipefail.
set -euo pipefail
dir=$1 root=$2
shift 2
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
present=()
for name in "$@"; do
    if [ -d "$root/$name" ]; then present+=("$name"); fi
done
name="$(date -u +%Y%m%dT%H%M%SZ)-shared.tar.gz"
while [ -e "$dir/$name" ]; do  # one per second: ids are unique and sort by time
    sleep 1
    name="$(date -u +%Y%m%dT%H%M%SZ)-shared.tar.gz"
done
tmp="$dir/.$name.partial"
trap 'rm -f "$tmp"' EXIT
# A file the app changes while it is read is archived as tar finds it (exit 1: "file changed as we read it");
# anything worse (exit 2) fails the backup.
status=0
tar -czf "$tmp" --numeric-owner -C "$root" -- "${present[@]}" || status=$?
if [ "$status" -gt 1 ]; then exit "$status"; fi
gzip -t "$tmp"
chmod 0600 "$tmp"
mv "$tmp" "$dir/$name"
trap - EXIT
echo "$name $(stat -c %s "$dir/$name")"
