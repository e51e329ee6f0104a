#!/bin/sh
# Run a preview's migrations on its own copy of the database, through its own account.
# $1 the app, $2 the release's folder, $3 the database, $4 the account, $5 the secrets file's name of its password.
# shellcheck disable=SC2164  # if the folder is missing, the migration below fails and is reported
cd "$2"
runuser -u "$1" -- env DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 PINNED_PREVIEW_DB_NAME="$3" \
    PINNED_PREVIEW_DB_USER="$4" PINNED_PREVIEW_DB_SECRET="$5" .venv/bin/python manage.py migrate --noinput && exit 0
echo "pinned: migrating the preview's database $3 failed (output above); current is unchanged" >&2
exit 1
