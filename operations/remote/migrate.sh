#!/bin/sh
# Run Django's migrations with a release against its schema version's database. On failure the release is
# marked failed and, when the database is a copy made for it ($7 = 1), the copy is dropped (the app's account
# may: it has ALL on it); a live database (schema_change: in_place, $7 = 0) is never dropped. `current` has not
# moved, so the site keeps serving the previous release.
# $1 the app, $2 the release's folder, $3 the database, $4 the release id, $5 release_meta.py's text,
# $6 migrate_drop.py's text, $7 drop the database on failure (1/0).
# shellcheck disable=SC2164  # as before: if the folder is missing, the migration below fails and is reported
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
cd "$2"
app=$1
scratch_dirs "$2" "$app"
if runuser -u "$app" -- env DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 \
        .venv/bin/python manage.py migrate --noinput; then
    exit 0
fi
python3 -c "$5" "$2" status=failed failure=migrate
if [ "$7" = 1 ]; then
    runuser -u "$app" -- env DJANGO_SETTINGS_MODULE=pinned_settings .venv/bin/python -c "$6" || true
    echo "pinned: migrating $3 with release $4 failed (output above); $3 was dropped, the release is marked failed, current is unchanged" >&2
else
    echo "pinned: migrating $3 in place with release $4 failed (output above): the release is marked failed, current is unchanged; $3 keeps what the migration did before it failed" >&2
fi
exit 1
