#!/bin/sh
# Wait for a virtualenv's background build ($1, started by venv_start.sh) to end; mark it ready
# (.pinned-ready) only if it succeeded. On failure: pip's output on stderr, exit 1, not ready. $2 the deploy
# lock's undo hook for the build, removed once it ended.
venv=$1 undo=$2
status="$venv/.pinned-build.status"
pid=$(cat "$venv/.pinned-build.pid" 2>/dev/null)
while [ ! -e "$status" ]; do
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        [ -e "$status" ] && break
        rm -f "$undo"
        echo "pinned: the build of the virtualenv $venv ended without finishing (killed?): nothing was built or" \
             "started; run the deploy again" >&2
        exit 1
    fi
    sleep 0.1
done
rm -f "$undo"
if [ "$(cat "$status")" != 0 ]; then
    echo "pinned: building the virtualenv $venv failed (python3 -m venv / pip install, output below): it is not" \
         "marked ready; no release was built or started, current is unchanged" >&2
    cat "$venv/.pinned-build.log" >&2
    exit 1
fi
touch "$venv/.pinned-ready"
