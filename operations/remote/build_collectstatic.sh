#!/bin/sh
# collectstatic runs as the app user ($1) into the release's ($2) own assets/, which is then made root's; it runs
# through collectstatic.py ($3's text), which writes the record of its sources (with the plan's key, $4, and the
# fingerprints of the secrets file $5 as it read it) to .pinned/static_sources.json (no record is left when it fails).
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
scratch_dirs "$2" "$1" && cd "$2" && install -d -o "$1" -g "$1" assets || exit 1
if runuser -u "$1" -- env DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 \
        .venv/bin/python -c "$3" "$4" "$5" 3>.pinned/static_sources.json; then
    chown -R root:root assets
else
    status=$?
    rm -f .pinned/static_sources.json
    exit "$status"
fi
