#!/bin/sh
# Put an uploaded certificate ($1.pinned-tmp) and its private key (read from stdin) in place of $1 and $2,
# together: root-owned, the certificate 0644, the key 0600. nginx's config is tested with both; if it fails,
# both old files come back (or the new ones go). Reloads a running nginx. The key never passes through a file
# anywhere else on the host (through sudo, pyinfra's uploads pass /tmp), nor a command line.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
set -eu
cert=$1 key=$2
umask 077
rm -f "$key.pinned-tmp"
cat >"$key.pinned-tmp"
test -s "$key.pinned-tmp" && test -s "$cert.pinned-tmp"
chown root:root "$cert.pinned-tmp" "$key.pinned-tmp"
chmod 0644 "$cert.pinned-tmp"
chmod 0600 "$key.pinned-tmp"
for f in "$cert" "$key"; do
    rm -f "$f.pinned-old"
    if [ -e "$f" ]; then cp -p "$f" "$f.pinned-old"; fi
done
mv -f "$cert.pinned-tmp" "$cert"
mv -f "$key.pinned-tmp" "$key"
if ! out=$(nginx -t 2>&1); then
    echo "$out" >&2
    for f in "$cert" "$key"; do
        if [ -e "$f.pinned-old" ]; then mv -f "$f.pinned-old" "$f"; else rm -f "$f"; fi
    done
    exit 1
fi
rm -f "$cert.pinned-old" "$key.pinned-old"
nginx_reload
