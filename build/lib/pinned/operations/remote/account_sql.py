# SQL that names the password is made on the server, from the secrets file, and piped to mysql (account.sh):
# the password is never in a command line, the plan or pyinfra's output.
# python3 -c TEXT SECRETS_FILE USER HOST GRANT REVOKE. Runs ON the host: standard library only.
# GRANT: the databases (as GRANT names them, `_` escaped) to grant ALL on, space-separated; REVOKE: the grants
# to take away, space-separated, or "*" for all of them.
import sys

secrets, user, host, grant, revoke = sys.argv[1:6]
password = None
for line in open(secrets):
    key, sep, value = line.rstrip("\n").partition("=")
    if key == "DB_PASSWORD":
        password = value


def q(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def name(text):
    return "`" + text.replace("`", "``") + "`"


account = "%s@%s" % (q(user), q(host))
sql = ["CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;" % (account, q(password)),
       "ALTER USER %s IDENTIFIED BY %s;" % (account, q(password))]
for database in revoke.split():
    if database == "*":
        sql.append("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s;" % account)
    else:
        sql.append("REVOKE ALL PRIVILEGES ON %s.* FROM %s;" % (name(database), account))
for database in grant.split():
    sql.append("GRANT ALL PRIVILEGES ON %s.* TO %s;" % (name(database), account))
print("\n".join(sql))
