#!/bin/sh
# The first link of a chained command whose work must not outlive the run that started it: a release's build
# (operations/release.py `build`) and a migration (operations/database.py `migrate`). A run that ends while such
# a command still runs on the host (killed, its connection cut) would leave it running there without the deploy
# lock: a build could rename its folder into place while the next run builds the same release; a migration that
# then fails marks its release failed and drops its database while the next run has made that database anew.
# So this writes the deploy lock's undo hook $1, which the lock's holder runs as the run ends (lock_hold.sh),
# while the lock is still held: it ends this command's whole process group (the chain) — $2 `stop` (a build):
# at once; `wait` (a migration, which may be altering the live database): only once it has run for an hour more,
# the lock held until then — with SIGTERM, waited for (5 s), then SIGKILL. The group is named by its leader's pid
# and start time (a zombie leader counts as ended), so the hook of a command that already ended is a no-op. The
# chain's last link removes the hook.
undo=$1 mode=${2:-stop}
read -r stat </proc/$$/stat || exit 1
pgid=$(echo "${stat##*) }" | cut -d' ' -f3)  # after "pid (comm) ": state, ppid, pgrp
start=$(cut -d' ' -f22 "/proc/$pgid/stat" 2>/dev/null)
[ -n "$pgid" ] && [ -n "$start" ] || { echo "pinned: cannot read this command's process group" >&2; exit 1; }
case "$mode" in stop) grace=0 ;; wait) grace=36000 ;; *) echo "pinned: run_guard.sh: mode $mode?" >&2; exit 1 ;; esac
install -d -m 0700 "$(dirname "$undo")" || exit 1
cat >"$undo" <<HOOK || exit 1
# end the command (process group $pgid) of a run that ended first
same() {  # the leader still runs (not a zombie: ended, not yet reaped) with the same start time
    s=\$(cut -d' ' -f3,22 /proc/$pgid/stat 2>/dev/null)
    [ "\${s#* }" = "$start" ] && [ "\${s%% *}" != Z ]
}
i=0
while same && [ "\$i" -lt $grace ]; do i=\$((i+1)); sleep 0.1; done
same || exit 0
kill -TERM -$pgid 2>/dev/null
i=0
while same && [ "\$i" -lt 100 ]; do i=\$((i+1)); sleep 0.05; done
same && kill -KILL -$pgid 2>/dev/null
exit 0
HOOK
