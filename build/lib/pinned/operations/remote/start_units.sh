#!/bin/sh
# Start a release's socket and service: $1 its socket unit, $2 its service unit.
systemctl enable --quiet --now "$1" && systemctl start "$2"
