#!/bin/sh
# Get the site's certificate from an ACME CA with certbot: the http-01 challenge is a file certbot writes into
# the webroot, which the site's nginx serves at /.well-known/acme-challenge/ on port 80. The lineage is named
# $1; its renewal (certbot.timer) reloads nginx (the deploy hook, kept in its renewal configuration).
# $1 cert name, $2 e-mail, $3 ACME directory URL, $4 webroot, $5 CA bundle of the directory's HTTPS ("": the
# system's), $6 1: a new certificate even if the lineage is not due; $7… the domains.
set -eu
name=$1 email=$2 directory=$3 webroot=$4 ca=$5 force=$6
shift 6
if [ -n "$ca" ]; then REQUESTS_CA_BUNDLE=$ca; export REQUESTS_CA_BUNDLE; fi
mkdir -p "$webroot/.well-known/acme-challenge"
chmod 0755 "$webroot" "$webroot/.well-known" "$webroot/.well-known/acme-challenge"
for domain; do set -- "$@" -d "$domain"; shift; done
if [ "$force" = 1 ]; then set -- "$@" --force-renewal; else set -- "$@" --keep-until-expiring; fi
certbot certonly --non-interactive --agree-tos --no-eff-email --email "$email" --server "$directory" \
    --webroot --webroot-path "$webroot" --cert-name "$name" --deploy-hook "systemctl reload nginx" "$@"
test -s "/etc/letsencrypt/live/$name/fullchain.pem"
