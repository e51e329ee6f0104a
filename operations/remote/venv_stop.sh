#!/bin/sh
# Stop the background build of a virtualenv ($1) that has not finished (the deploy lock's undo hook when its
# run ended first, and venv_start.sh before building it again): its whole process group (dash's kill takes no
# `--`: "-PGID" after the signal), waited for (5 s), then killed.
venv=$1
[ -e "$venv/.pinned-build.status" ] && exit 0
pid=$(cat "$venv/.pinned-build.pid" 2>/dev/null) || exit 0
kill -TERM "-$pid" 2>/dev/null || exit 0
i=0
while kill -0 "-$pid" 2>/dev/null && [ "$i" -lt 100 ]; do i=$((i+1)); sleep 0.05; done
kill -KILL "-$pid" 2>/dev/null
exit 0
