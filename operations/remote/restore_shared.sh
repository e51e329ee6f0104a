#!/bin/bash
# Put a shared-folders backup back on a web host: every file and folder of the archive $1 is written into
# $2 (/srv/<app>/shared) as it was (content, owner, mode); files the app wrote since the backup and that the
# archive does not have stay. The caller has taken a backup of the folders first. Prints `restored <n> files`.
set -euo pipefail
file=$1 root=$2
[ -f "$file" ] || { echo "pinned: no such backup: $file" >&2; exit 1; }
gzip -t "$file" || { echo "pinned: $file is not a complete gzip file: nothing was changed" >&2; exit 1; }
# Only relative paths, no `..`: an archive pinned did not write cannot escape the folder.
if tar -tzf "$file" | grep -qE '^/|(^|/)\.\.(/|$)'; then
    echo "pinned: $file holds a path outside the shared folders: nothing was changed" >&2
    exit 1
fi
tar -xzf "$file" -C "$root" --same-owner --same-permissions --numeric-owner
echo "restored $(tar -tzf "$file" | grep -vc '/$') files"
