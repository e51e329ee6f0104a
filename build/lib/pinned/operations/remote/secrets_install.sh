#!/bin/sh
# Put the uploaded secrets ($1.pinned-tmp) in place of $1: root-owned, readable by the app's group $2, 0640.
chown "root:$2" "$1.pinned-tmp" && chmod 0640 "$1.pinned-tmp" && mv -f "$1.pinned-tmp" "$1"
