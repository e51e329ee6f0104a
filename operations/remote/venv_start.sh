#!/bin/sh
# Start building a virtualenv in the background and return at once: the run goes on with what does not need
# it, and venv_wait.sh waits for it where it is first needed. Nothing here marks it ready.
#   $1 the virtualenv's folder, $2 its requirements file's text, $3 the deploy lock's undo hook for this build,
#   $4 that hook's text (venv_stop.sh's command line: stops the build when the run ends before waiting for it),
#   $5 venv_build.sh's text (what runs in the background), $6… the extra packages every release needs.
# A build a killed run left behind is stopped first. The build runs in a session of its own (setsid; its
# process group is what the hook stops), with no connection to this command's output.
venv=$1 requirements=$2 undo=$3 hook=$4 build=$5
shift 5
sh -c "$hook" || exit 1
rm -rf "$venv" && mkdir -p "$venv" && printf '%s\n' "$requirements" > "$venv/requirements.txt" || exit 1
install -d -m 0700 "$(dirname "$undo")" && printf '%s\n' "$hook" > "$undo" || exit 1
setsid sh -c "$build" pinned "$venv" "$@" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s "$venv/.pinned-build.pid" ]; do  # its first act: its pid (its process group's) is written
    i=$((i+1))
    if [ "$i" -gt 200 ]; then echo "pinned: the build of the virtualenv $venv did not start" >&2; exit 1; fi
    sleep 0.05
done
