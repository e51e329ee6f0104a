# SQL for a preview's database account (made on the server; the password is read from the secrets file and
# never printed elsewhere than into mysql's standard input: preview_db.sh). Runs ON the host: standard library.
#   python3 -c TEXT account SECRETS USER HOST PASSWORD_KEY PRIVILEGES DATABASE   (PRIVILEGES: SELECT or ALL)
#   python3 -c TEXT drop DATABASE USER@HOST...                                    (DATABASE "" : none)
import sys


def q(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def name(text):
    return "`" + text.replace("`", "``") + "`"


def account_sql(secrets, user, host, key, privileges, database):
    password = None
    for line in open(secrets):
        k, sep, value = line.rstrip("\n").partition("=")
        if sep and k == key:
            password = value
    if not password:
        raise SystemExit("pinned: %s has no value in %s" % (key, secrets))
    if privileges not in ("SELECT", "ALL"):
        raise SystemExit("pinned: privileges must be SELECT or ALL")
    account = "%s@%s" % (q(user), q(host))
    return ["CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;" % (account, q(password)),
            "ALTER USER %s IDENTIFIED BY %s;" % (account, q(password)),
            "REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s;" % account,
            "GRANT %s ON %s.* TO %s;" % ("ALL PRIVILEGES" if privileges == "ALL" else "SELECT", name(database),
                                         account)]


def drop_sql(database, accounts):
    sql = []
    for account in accounts:
        user, _, host = account.rpartition("@")
        sql.append("DROP USER IF EXISTS %s@%s;" % (q(user), q(host)))
    if database:
        sql.append("DROP DATABASE IF EXISTS %s;" % name(database))
    return sql


if __name__ == "__main__":
    mode = sys.argv[1]
    lines = account_sql(*sys.argv[2:8]) if mode == "account" else drop_sql(sys.argv[2], sys.argv[3:])
    print("\n".join(lines))
