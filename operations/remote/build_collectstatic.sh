#!/bin/sh
# collectstatic runs as the app user ($1) into the release's ($2) own assets/, which is then made root's.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
scratch_dirs "$2" "$1" && cd "$2" && install -d -o "$1" -g "$1" assets &&
    runuser -u "$1" -- env DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 \
        .venv/bin/python manage.py collectstatic --noinput --verbosity 0 &&
    chown -R root:root assets
