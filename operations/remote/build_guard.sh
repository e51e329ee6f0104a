#!/bin/sh
# The first link of a release's chained build (operations/release.py `build`): a run that ends while its build
# still runs on the host (killed, its connection cut) must not leave it running there: it would go on without
# the deploy lock and rename its folder into place while the next run builds the same release. So this writes
# the deploy lock's undo hook $1, which the lock's holder runs as the run ends (lock_hold.sh): it stops this
# command's whole process group (the chain: extract, collectstatic, …), waited for (5 s), then killed. The
# group is named by its leader's pid and start time, so a hook left by a build that failed is a no-op. The last
# link of the chain removes the hook.
undo=$1
read -r stat </proc/$$/stat || exit 1
pgid=$(echo "${stat##*) }" | cut -d' ' -f3)  # after "pid (comm) ": state, ppid, pgrp
start=$(cut -d' ' -f22 "/proc/$pgid/stat" 2>/dev/null)
[ -n "$pgid" ] && [ -n "$start" ] || { echo "pinned: cannot read this build's process group" >&2; exit 1; }
install -d -m 0700 "$(dirname "$undo")" || exit 1
cat >"$undo" <<HOOK || exit 1
# stop the build of a run that ended first: process group $pgid
same() { [ "\$(cut -d' ' -f22 /proc/$pgid/stat 2>/dev/null)" = "$start" ]; }
same || exit 0
kill -TERM -$pgid 2>/dev/null
i=0
while same && [ "\$i" -lt 100 ]; do i=\$((i+1)); sleep 0.05; done
same && kill -KILL -$pgid 2>/dev/null
exit 0
HOOK
