#!/bin/sh
# pinned's shell library (POSIX sh): functions shared by the scripts in this folder. Not run on its own: a
# script sources it on one line, and operations/scripts.py puts this text in place of that line, so on the
# host the script still runs as one `sh -c TEXT pinned ARGS…`. POSIX sh has no `local`: this library's own
# variables start with _pinned_.

# atomic_write FILE TMP TEXT: write TEXT and a newline to TMP, then rename TMP over FILE (a reader sees the
# old content or the new one, never a part of it).
atomic_write() {
    printf "%s\n" "$3" > "$2" && mv -f "$2" "$1"
}

# atomic_link LINK TARGET: point the symlink LINK at TARGET (ln -s TARGET tmp && mv -T tmp LINK: LINK is
# never missing, it points at the old target or at the new one), then verify it: fails unless LINK points
# at TARGET.
atomic_link() {
    _pinned_tmp="$(dirname "$1")/.$(basename "$1").pinned-tmp"
    rm -f "$_pinned_tmp" && ln -s "$2" "$_pinned_tmp" && mv -T "$_pinned_tmp" "$1"
    [ "$(readlink "$1")" = "$2" ]
}

# wait_healthy SOCKET HOST URL TRIES: ask the release on SOCKET for URL (Host: HOST) every 0.25 s until it
# answers 2xx (success) or TRIES attempts were made (failure); the last status is left in $code.
wait_healthy() {
    _pinned_i=0
    while [ "$_pinned_i" -lt "$4" ]; do
        code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 --unix-socket "$1" -H "Host: $2" \
               "http://localhost$3")
        case "$code" in 2??) return 0;; esac
        _pinned_i=$((_pinned_i+1)); sleep 0.25
    done
    return 1
}

# nginx_install FILE: put the uploaded FILE.pinned-tmp in place of FILE (a copy of the old one kept as
# FILE.pinned-old), then nginx_check FILE.
nginx_install() {
    if [ -e "$1" ]; then cp -p "$1" "$1.pinned-old"; fi
    mv -f "$1.pinned-tmp" "$1"
    nginx_check "$1"
}

# nginx_check FILE: test nginx's config (nginx -t); when it fails, put FILE.pinned-old back (or remove FILE
# if there was no old one), print nginx's output on stderr and exit 1. Nothing is reloaded here.
nginx_check() {
    if ! _pinned_out=$(nginx -t 2>&1); then
        echo "$_pinned_out" >&2
        if [ -e "$1.pinned-old" ]; then mv -f "$1.pinned-old" "$1"; else rm -f "$1"; fi
        exit 1
    fi
    rm -f "$1.pinned-old"
}

# nginx_reload: reload nginx, only if it is running.
# Returns once the workers that ran before the reload have all been told to quit (exited, or "shutting down"):
# `systemctl reload` returns before that, and a stop or a freeze that looked earlier saw nothing to drain.
nginx_reload() {
    if systemctl is-active --quiet nginx; then
        _pinned_old=$(pgrep -f '^nginx: worker process[[:space:]]*$' | tr '\n' ' ')
        systemctl reload nginx
        _pinned_i=0
        while [ $_pinned_i -lt 100 ]; do
            _pinned_now=" $(pgrep -f '^nginx: worker process[[:space:]]*$' | tr '\n' ' ') "
            _pinned_left=
            for _pinned_pid in $_pinned_old; do
                case "$_pinned_now" in *" $_pinned_pid "*) _pinned_left=1;; esac
            done
            [ -z "$_pinned_left" ] && break
            _pinned_i=$((_pinned_i+1)); sleep 0.05
        done
    fi
}

# switch_release UPSTREAM CURRENT TARGET HISTORY FROM RID BY SERVED TEXT: nginx's upstream (its new TEXT) and the
# `current` link (to TARGET, relative) move together, nginx reloads, the switch FROM → RID (by BY) is appended to
# HISTORY; SERVED is the schema version's marker (its database now takes the site's writes). Exits on a failure.
switch_release() {
    mkdir -p "$(dirname "$1")"
    printf "%s" "$9" > "$1.pinned-tmp"
    nginx_install "$1"
    atomic_link "$2" "$3" || { echo "pinned: current did not switch" >&2; exit 1; }
    [ -e "$8" ] || touch "$8"
    nginx_reload
    printf "%s switch from=%s to=%s by=%s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$5" "$6" "$7" >> "$4"
}

# stop_units SOCKET_UNIT SERVICE_UNIT: disable and stop a release's socket and service.
stop_units() {
    systemctl disable --quiet --now "$1" "$2"
}
