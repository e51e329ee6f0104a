#!/bin/bash
# Restore a backup into its own database: the database stays (sessions keep it as their default
# database); its tables and views are dropped, then the dump is loaded, in one mysql session. The caller
# has checked that the backup is of this database and has taken a backup of the current state first.
# $1 the backup file, $2 the database. Prints `restored <tables> tables`. bash for pipefail.
set -euo pipefail
file=$1 db=$2
[ -f "$file" ] || { echo "pinned: no such backup: $file" >&2; exit 1; }
gzip -t "$file" || { echo "pinned: $file is not a complete gzip file: nothing was changed" >&2; exit 1; }
mysql -N -B -e "SELECT 1 FROM information_schema.schemata WHERE schema_name = '$db'" | grep -q 1 \
    || { echo "pinned: database $db does not exist: nothing was changed" >&2; exit 1; }
list() {  # the database's tables or views, as `a`,`b` (empty if none)
    mysql -N -B -e "SELECT CONCAT('\`', REPLACE(table_name, '\`', '\`\`'), '\`') FROM information_schema.tables
                    WHERE table_schema = '$db' AND table_type = '$1'" | paste -sd, -
}
views=$(list VIEW)
tables=$(list 'BASE TABLE')
{
    echo "SET FOREIGN_KEY_CHECKS = 0;"
    if [ -n "$views" ]; then echo "DROP VIEW IF EXISTS $views;"; fi
    if [ -n "$tables" ]; then echo "DROP TABLE IF EXISTS $tables;"; fi
    echo "SET FOREIGN_KEY_CHECKS = 1;"
    gzip -dc "$file"
} | mysql --default-character-set=utf8mb4 "$db"
echo "restored $(mysql -N -B -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$db'") tables"
