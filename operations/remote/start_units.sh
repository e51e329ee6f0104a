#!/bin/sh
# Start a release's socket and service: $1 the app, $2 the release id.
systemctl enable --quiet --now "$1@$2.socket" && systemctl start "$1@$2.service"
