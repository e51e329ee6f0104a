#!/bin/bash
# Hold the deploy lock for as long as the run that started this script is connected (pinned/lock.py runs it
# over its own SSH channel of the run's connection).
#   $1 the lock file (state.layout.Layout.lock)
#   $2 the holder line: a JSON object {"by": "user@machine", "pid": N, "since": "…Z"}
#   $3 seconds without a heartbeat line on stdin after which the run counts as gone (default 45)
#
# Takes `flock -n` on $1 itself. Someone holds it: prints "refused <their holder line>" and exits 3 (at
# once: it never waits). Taken: writes the holder line with "holder_pid" (this process, which `pinned unlock`
# ends) added into $1, prints "held <that line>", then reads stdin, one heartbeat line every few seconds.
# The hold ends on end of input (the run's connection closed: it finished, failed, was declined, or was
# killed), on no line for $3 seconds (a cut network: no FIN ever reaches this host), or on SIGTERM, SIGHUP or
# SIGINT (`pinned unlock`).
#
# The undo hooks, $1.undo and each file in $1.undo.d/: just before the hold ends — while the flock is still
# held, so no other run can start — each is run with sh (its output goes to the system log, tag pinned-undo)
# and then removed; then $1 is removed and the flock goes with this process. A step that changes something a
# dead run must not leave behind (the write freeze: one hook per host role) writes there the shell commands
# that lift it, and removes its hook itself once it lifted it. Hooks found when the lock is taken were left by
# a holder killed on the host itself (SIGKILL, OOM): they are run (and removed) first.
set -u
lock=$1 holder=$2 timeout=${3:-45}
trap '' PIPE  # the run's connection may be gone: writing to it must not end the cleanup

undo() {
    for hook in "$lock.undo" "$lock.undo.d"/*; do
        [ -f "$hook" ] || continue
        if command -v logger >/dev/null 2>&1; then
            sh "$hook" </dev/null 2>&1 | logger -t pinned-undo
        else
            sh "$hook" </dev/null >/dev/null 2>&1
        fi
        rm -f "$hook"
    done
}

taken=
for _ in 1 2 3 4 5; do
    exec 9>>"$lock" || exit 4
    if ! flock -n 9; then
        held=$(cat "$lock" 2>/dev/null)
        for _ in 1 2 3 4 5 6 7 8 9 10; do  # a holder that just took it may still be writing its line
            [ -n "$held" ] && break
            sleep 0.1
            held=$(cat "$lock" 2>/dev/null)
        done
        printf 'refused %s\n' "$held"
        exit 3
    fi
    # The file we locked must still be the lock: a holder ending removes it before its flock goes.
    if [ /dev/fd/9 -ef "$lock" ]; then taken=1; break; fi
    exec 9>&-
done
[ -n "$taken" ] || { echo "cannot take $lock: it keeps being replaced" >&2; exit 4; }

release() {
    trap - EXIT HUP INT TERM
    exec >/dev/null 2>&1 </dev/null
    undo
    rm -f "$lock"
    exit 0
}
trap release EXIT HUP INT TERM

undo  # left by a holder killed on the host itself
line="${holder%\}}, \"holder_pid\": $$}"
printf '%s\n' "$line" > "$lock"
printf 'held %s\n' "$line"
while read -r -t "$timeout" _; do :; done
