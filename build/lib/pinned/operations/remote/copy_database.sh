#!/bin/bash
# Create a schema version's database (utf8mb4): empty, or a verified copy of another one. A failed copy
# drops the new database again; the source is only read.
# $1 the new database, $2 the one to copy ("" for an empty one), $3 1 to drop a leftover first, $4
# verify_copy.py's text. bash for pipefail: a failed mysqldump fails the copy.
set -euo pipefail
dst=$1 src=$2 recreate=$3 verify=$4
# The plan only asks for a database that does not exist, or a leftover to make again (recreate=1).
if [ "$recreate" = 1 ]; then mysql -e "DROP DATABASE IF EXISTS \`$dst\`"; fi
mysql -e "CREATE DATABASE \`$dst\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
[ -n "$src" ] || exit 0
fail() {
    mysql -e "DROP DATABASE IF EXISTS \`$dst\`"
    echo "pinned: $1; $dst was dropped, nothing else changed" >&2
    exit 1
}
# A consistent snapshot (--single-transaction); DEFINER clauses naming other accounts are stripped, or a
# non-SUPER restore fails half-way. utf8mb4 end to end, or 4-byte characters are lost.
if ! mysqldump --single-transaction --routines --triggers --events --default-character-set=utf8mb4 "$src" \
        | sed -E "s/DEFINER=\`[^\`]*\`@\`[^\`]*\`//g" \
        | mysql --default-character-set=utf8mb4 "$dst"; then
    fail "copying $src into $dst failed"
fi
python3 -c "$verify" "$src" "$dst" || fail "the copy of $src in $dst does not match it"
