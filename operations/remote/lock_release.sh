#!/bin/sh
# Remove the deploy lock $1 only if it is still ours ($2), or, by hand, whoever holds it ($2 = "").
exec 9>"$1.guard"
flock -w 10 9 || exit 4
if [ -z "$2" ] || [ "$(cat "$1" 2>/dev/null)" = "$2" ]; then rm -f "$1"; fi
