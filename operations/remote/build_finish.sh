#!/bin/sh
# Only a finished build ($1) becomes the release's folder ($2).
rm -rf "$2" && mv -T "$1" "$2"
