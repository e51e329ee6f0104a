# SQL that names the password is made on the server, from the secrets file, and piped to mysql (account.sh):
# the password is never in a command line, the plan or pyinfra's output.
# python3 -c TEXT SECRETS_FILE USER HOST REVOKE(1/0) DATABASE_PATTERN. Runs ON the host: standard library only.
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
