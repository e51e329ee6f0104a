"""MariaDB: the schema versions' databases (created empty or copied and verified), the app's account,
migrations."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand, operation

from .files import RELEASE_META, sh

# SQL that names the password is made on the server, from the secrets file, and piped to mysql:
# the password is never in a command line, the plan or pyinfra's output.
ACCOUNT_SCRIPT = r'''
import sys
secrets, user, host, revoke, pattern = sys.argv[1:6]
password = None
for line in open(secrets):
    key, sep, value = line.rstrip("\n").partition("=")
    if key == "DB_PASSWORD":
        password = value
def q(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
account = "%s@%s" % (q(user), q(host))
sql = ["CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;" % (account, q(password)),
       "ALTER USER %s IDENTIFIED BY %s;" % (account, q(password))]
if revoke == "1":
    sql.append("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s;" % account)
sql.append("GRANT ALL PRIVILEGES ON `%s`.* TO %s;" % (pattern, account))
print("\n".join(sql))
'''

# Compare two databases table by table with exact row counts: the copy is used only if they match.
VERIFY_SCRIPT = r'''
import subprocess, sys
src, dst = sys.argv[1:3]
def q(sql):
    out = subprocess.run(["mysql", "-N", "-B", "-e", sql], check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]
def tables(db):
    return sorted(r[0] for r in q("SELECT table_name FROM information_schema.tables WHERE table_schema = '%s' "
                                  "AND table_type = 'BASE TABLE'" % db))
def counts(db, names):
    if not names:
        return {}
    sql = " UNION ALL ".join("SELECT '%s', COUNT(*) FROM `%s`.`%s`" % (t, db, t) for t in names)
    return {r[0]: int(r[1]) for r in q(sql)}
a, b = tables(src), tables(dst)
if a != b:
    sys.exit("copy check failed: tables differ: only in %s: %s; only in %s: %s" % (
        src, sorted(set(a) - set(b)), dst, sorted(set(b) - set(a))))
ca, cb = counts(src, a), counts(dst, b)
diff = [t for t in a if ca[t] != cb[t]]
if diff:
    sys.exit("copy check failed: row counts differ in %s (were rows written during the copy?)" % ", ".join(
        "%s %d/%d" % (t, ca[t], cb[t]) for t in diff))
print("copied %s into %s: %d tables, %d rows, counts equal" % (src, dst, len(a), sum(ca.values())))
'''

COPY_SCRIPT = r'''
set -eu
dst=$1 src=$2 recreate=$3 verify=$4
# The plan only asks for a database that does not exist, or a leftover to make again (recreate=1).
if [ "$recreate" = 1 ]; then mysql -e "DROP DATABASE IF EXISTS \`$dst\`"; fi
mysql -e "CREATE DATABASE \`$dst\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
[ -n "$src" ] || exit 0
fail() { mysql -e "DROP DATABASE IF EXISTS \`$dst\`"; echo "pinned: $1; $dst was dropped, nothing else changed" >&2; exit 1; }
# A consistent snapshot (--single-transaction); DEFINER clauses naming other accounts are stripped, or a
# non-SUPER restore fails half-way. utf8mb4 end to end, or 4-byte characters are lost.
if ! bash -o pipefail -c 'mysqldump --single-transaction --routines --triggers --events \
        --default-character-set=utf8mb4 "$1" | sed -E "s/DEFINER=\`[^\`]*\`@\`[^\`]*\`//g" \
        | mysql --default-character-set=utf8mb4 "$2"' copy "$src" "$dst"; then
    fail "copying $src into $dst failed"
fi
python3 -c "$verify" "$src" "$dst" || fail "the copy of $src in $dst does not match it"
'''


@operation()
def database(database: str, copy_from: str = "", recreate: bool = False):
    """Create a schema version's database (utf8mb4): empty, or a verified copy of another one.
    A failed copy drops the new database again; the source is only read."""
    yield sh(COPY_SCRIPT, database, copy_from, "1" if recreate else "0", VERIFY_SCRIPT)


@operation()
def account(user: str, host: str, secrets: str, pattern: str, revoke: bool = False):
    """The app's database account, with privileges on the app's databases (`pattern`) only."""
    yield sh('sql=$(python3 -c "$6" "$1" "$2" "$3" "$4" "$5") && printf "%s\\n" "$sql" | mysql',
             secrets, user, host, "1" if revoke else "0", pattern, ACCOUNT_SCRIPT)


# On failure the new database is dropped (the app's account may: it has ALL on its databases) and the
# release is marked failed; `current` has not moved, so the site keeps serving the previous release.
MIGRATE_SCRIPT = r'''
cd "$2"
app=$1
if runuser -u "$app" -- env DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 \
        .venv/bin/python manage.py migrate --noinput; then
    exit 0
fi
runuser -u "$app" -- env DJANGO_SETTINGS_MODULE=pinned_settings .venv/bin/python -c '
import django; django.setup()
from django.db import connection
connection.cursor().execute("DROP DATABASE `%s`" % connection.settings_dict["NAME"])' || true
python3 -c "$5" "$2" status=failed failure=migrate
echo "pinned: migrating $3 with release $4 failed (output above); $3 was dropped, the release is marked failed, current is unchanged" >&2
exit 1
'''


@operation()
def migrate(app: str, release_dir: str, database: str, release_id: str):
    """Run Django's migrations with a release against its (new) schema version's database, once."""
    yield sh(MIGRATE_SCRIPT, app, release_dir, database, release_id, RELEASE_META)


@operation()
def schema_file(schema_dir: str, info: str):
    """Record a schema version on a web host: versions/<N>/schema.json (written atomically)."""
    yield StringCommand("mkdir", "-p", QuoteString(schema_dir))
    yield sh('printf "%s\\n" "$2" > "$1/.schema.json.tmp" && mv -f "$1/.schema.json.tmp" "$1/schema.json"',
             schema_dir, info)
