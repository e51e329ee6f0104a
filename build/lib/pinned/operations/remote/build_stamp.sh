#!/bin/sh
# Record when the release in $1 was built (the host's clock): $2 is release_meta.py's text.
python3 -c "$2" "$1" "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
