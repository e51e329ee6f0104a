#!/bin/bash
# `pinned unlock`: end the holder of the deploy lock $1 (a run still connected but hung). Prints the holder
# line found (nothing, and exit 0, when no lock is held), then one of: "ended <pid>" (its holder process ran
# its undo hook and removed the lock), "killed <pid>" (it did not end on SIGTERM within 10 s: SIGKILL, and
# its undo hook and the lock file were handled here), "stale" (no live holder: the undo hook and the file
# are handled here). The undo hook is $1.undo, as in lock_hold.sh: run with sh, then removed.
lock=$1
[ -e "$lock" ] || exit 0
held=$(cat "$lock" 2>/dev/null)
printf '%s\n' "$held"
pid=$(printf '%s\n' "$held" | sed -n 's/.*"holder_pid": *\([0-9][0-9]*\).*/\1/p')
exec 9<"$lock" || exit 0
outcome=stale
# Only a live lock_hold.sh of this very lock file is ended (never a process that merely reused the pid).
if [ -n "$pid" ] && ! flock -n 9 && tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$lock"; then
    kill -TERM "$pid" 2>/dev/null
    outcome="ended $pid"
    if ! flock -w 10 9; then
        kill -KILL "$pid" 2>/dev/null
        outcome="killed $pid"
        flock -w 10 9 || { echo "cannot end holder $pid" >&2; exit 1; }
    fi
fi
flock -w 10 9 || { echo "the lock is held and its holder is unknown" >&2; exit 1; }
# The flock is ours: if the file we locked is still the lock, its holder did not clean up after itself.
if [ /dev/fd/9 -ef "$lock" ]; then
    if [ -e "$lock.undo" ]; then sh "$lock.undo" </dev/null >/dev/null 2>&1; rm -f "$lock.undo"; fi
    rm -f "$lock"
fi
echo "$outcome"
