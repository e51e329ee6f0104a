#!/bin/sh
# The links a release gets inside its project (`shared:` folders with a `link`, `scratch:` folders): each
# PATH (relative to the build folder $1) becomes a symbolic link to TARGET, its parent folders made (root's).
# A PATH the commit has (a file or a folder) is refused: the link would hide committed code. The paths are
# recorded in .pinned/links (one a line): they are pinned's, not the release's code (release_files.py).
# $1 the build folder, then PATH TARGET pairs.
building=$1
shift
: >"$building/.pinned/links"
while [ "$#" -ge 2 ]; do
    path=$1 target=$2
    shift 2
    if [ -e "$building/$path" ] || [ -L "$building/$path" ]; then
        echo "pinned: $path is in the release's code (committed): it cannot become a link to $target: remove it from the repository, or link another path" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$building/$path")" && ln -s "$target" "$building/$path" &&
        printf '%s\n' "$path" >>"$building/.pinned/links" || exit 1
done
