#!/bin/sh
# Put the secrets read from stdin in place of $1: root-owned, readable by the app's group $2, 0640. They come
# over this command's own stdin (operations/connection.py): never through a file anywhere else on the host
# (through sudo, pyinfra's uploads pass a temporary file in /tmp), never on a command line.
umask 077
tmp="$1.pinned-tmp"
rm -f "$tmp" && cat >"$tmp" && test -s "$tmp" && chown "root:$2" "$tmp" && chmod 0640 "$tmp" && mv -f "$tmp" "$1"
