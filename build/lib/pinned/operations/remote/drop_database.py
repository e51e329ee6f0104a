# Drop one schema version's database and take its grant away from every account of the app (MariaDB keeps
# database grants after a DROP: a database made later under the same name would be reachable again).
# python3 -c TEXT USER DATABASE GRANT (GRANT: the database as GRANT names it, `_` escaped). As root.
import subprocess
import sys

user, database, grant = sys.argv[1:4]


def sql(statement):
    return subprocess.run(["mysql", "-N", "-B", "-e", statement], check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout


def literal(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(text):
    return "`" + text.replace("`", "``") + "`"


sql("DROP DATABASE %s" % identifier(database))
for host in [h for h in sql("SELECT host FROM mysql.user WHERE user = %s" % literal(user)).split("\n") if h]:
    account = "%s@%s" % (literal(user), literal(host))
    granted = sql("SHOW GRANTS FOR %s" % account)
    if " ON %s.* TO " % identifier(grant) in granted:
        sql("REVOKE ALL PRIVILEGES ON %s.* FROM %s" % (identifier(grant), account))
