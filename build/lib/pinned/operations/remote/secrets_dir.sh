#!/bin/sh
# The folder of the secrets file $1: root's, readable by the app's group $2 only.
install -d -o root -g "$2" -m 0750 "$(dirname "$1")"
