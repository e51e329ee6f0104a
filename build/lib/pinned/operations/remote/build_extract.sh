#!/bin/sh
# Extract the uploaded archive $2 into the build folder $1 (the archive is then removed): all of it root's,
# readable and not writable by others.
tar -xzf "$2" -C "$1" --no-same-owner --no-same-permissions && rm -f "$2" &&
    chown -R root:root "$1" && chmod -R u+rwX,go+rX,go-w "$1"
