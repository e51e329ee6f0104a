#!/bin/bash
# Back up one database: a consistent, compressed dump into the app's backups folder (root-only), written
# under a temporary name and renamed when complete and checked, so a half-written backup never lists. Then,
# with KEEP > 0, remove the app's backups beyond the newest KEEP (only files named as its backups).
# The same script runs for `pinned backup` and, installed on the db host, for the scheduled backups' timer.
# $1 the folder, $2 the database, $3 KEEP (0: remove nothing), $4 a POSIX ERE of the app's backup names.
# Prints one line: `<id> <bytes>`. bash for pipefail: a failed mysqldump fails the backup.
set -euo pipefail
dir=$1 db=$2 keep=$3 names=$4
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
name="$(date -u +%Y%m%dT%H%M%SZ)-$db.sql.gz"
while [ -e "$dir/$name" ]; do  # one per second: ids are unique and sort by time
    sleep 1
    name="$(date -u +%Y%m%dT%H%M%SZ)-$db.sql.gz"
done
tmp="$dir/.$name.partial"
trap 'rm -f "$tmp"' EXIT
# Credentials: root through MariaDB's unix socket (no password anywhere). A consistent snapshot
# (--single-transaction); DEFINER clauses stripped (a restore must not need SUPER); utf8mb4 end to end.
mysqldump --single-transaction --routines --triggers --events --default-character-set=utf8mb4 "$db" \
    | sed -E "s/DEFINER=\`[^\`]*\`@\`[^\`]*\`//g" \
    | gzip -c > "$tmp"
gzip -t "$tmp"
chmod 0600 "$tmp"
mv "$tmp" "$dir/$name"
trap - EXIT
if [ "$keep" -gt 0 ]; then
    # Newest first (the names sort by time); everything after the KEEP newest goes.
    find "$dir" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | { grep -E "$names" || true; } | sort -r \
        | tail -n +"$((keep + 1))" | while IFS= read -r old; do rm -f -- "${dir:?}/$old"; done
fi
echo "$name $(stat -c %s "$dir/$name")"
