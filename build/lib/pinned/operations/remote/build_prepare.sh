#!/bin/sh
# An empty build folder: $1 versions/<N>/.<id>.building
rm -rf "$1" && mkdir -p "$1/.pinned"
