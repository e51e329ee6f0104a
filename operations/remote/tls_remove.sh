#!/bin/sh
# Remove what HTTPS left that the state file no longer asks for, once nginx no longer uses it: the certbot
# lineage $1 ("": none; `certbot delete`: its certificates and renewal configuration), then the files $2….
set -eu
name=$1
shift
if [ -n "$name" ] && [ -e "/etc/letsencrypt/renewal/$name.conf" ]; then
    certbot delete --non-interactive --cert-name "$name"
fi
rm -f -- "$@"
systemctl daemon-reload
