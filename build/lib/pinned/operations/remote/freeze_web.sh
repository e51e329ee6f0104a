#!/bin/sh
# A schema change's write freeze on a web host. $1 on|off, $2 the site's nginx include, $3 what it holds now
# (refusing writes, or not), $4 the marker that exists while frozen, $5 the lock's undo hook for it.
# On: the include refuses writes, nginx is reloaded, and the old workers are waited for (a write admitted
# before the freeze finishes before the database is copied). Off: the include lets writes through again,
# nginx is reloaded, the marker and the undo hook go.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
mode=$1 conf=$2 content=$3 marker=$4 undo=$5
[ -e "$conf" ] && cp -p "$conf" "$conf.pinned-old"
printf "%s" "$content" > "$conf.pinned-tmp" && mv -f "$conf.pinned-tmp" "$conf"
nginx_check "$conf"
if [ "$mode" = on ]; then
    touch "$marker"
    nginx_reload
    i=0
    while [ $i -lt 300 ] && pgrep -f "^nginx: worker process is shutting dow[n]" >/dev/null; do
        i=$((i+1)); sleep 0.1
    done
else
    nginx_reload
    rm -f "$marker" "$undo"
fi
