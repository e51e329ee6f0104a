#!/bin/sh
# The deploy lock's undo hook of a background install (packages_start.sh; $1 its job folder) whose run ended
# before waiting for it: dpkg is never stopped half-way, so the lock is held until the install ended (at most an
# hour), and no next run starts beside it.
job=$1
pid=$(cat "$job/pid" 2>/dev/null) || exit 0
i=0
while [ ! -e "$job/status" ] && kill -0 "$pid" 2>/dev/null && [ "$i" -lt 36000 ]; do i=$((i+1)); sleep 0.1; done
exit 0
