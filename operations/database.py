"""MariaDB: the schema versions' databases, the app's account, migrations."""

from __future__ import annotations

import json

from pyinfra.api import operation

from .files import sh

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


@operation()
def database(database: str):
    """Create a schema version's database (utf8mb4)."""
    yield sh('mysql -e "CREATE DATABASE IF NOT EXISTS \\`$1\\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"',
             database)


@operation()
def account(user: str, host: str, secrets: str, pattern: str, revoke: bool = False):
    """The app's database account, with privileges on the app's databases (`pattern`) only."""
    yield sh('sql=$(python3 -c "$6" "$1" "$2" "$3" "$4" "$5") && printf "%s\\n" "$sql" | mysql',
             secrets, user, host, "1" if revoke else "0", pattern, ACCOUNT_SCRIPT)


@operation()
def migrate(app: str, release_dir: str, schema_dir: str, database: str, fingerprint: str):
    """Run Django's migrations with a release against its schema's database, then record the schema."""
    info = json.dumps({"database": database, "fingerprint": fingerprint, "migrated": True,
                       "copied_from": None}, sort_keys=True)
    yield sh('cd "$2" && runuser -u "$1" -- env DJANGO_SETTINGS_MODULE=pinned_settings '
             '.venv/bin/python manage.py migrate --noinput', app, release_dir)
    yield sh('printf "%s\\n" "$2" > "$1/.schema.json.tmp" && mv -f "$1/.schema.json.tmp" "$1/schema.json"',
             schema_dir, info)
