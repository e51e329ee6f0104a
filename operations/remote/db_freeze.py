# A schema change's write freeze on the db host (python3, standard library only; as root, through the unix
# socket). python3 -c TEXT on|off USER GRANT DATABASE UNDO
#   on:  every account of USER may only SELECT on DATABASE (GRANT names it GRANT, `_` escaped). MariaDB applies
#        database privileges to connections made after the change, so it then waits until every connection
#        of USER to DATABASE made before has ended (the app connects per request), 30 s at most, then ends
#        those left: when this returns, no write to DATABASE can succeed.
#   off: ALL again, and the lock's undo hook for it (UNDO) goes.
import os
import subprocess
import sys
import time

mode, user, grant, database, undo = sys.argv[1:6]
# Every database-level privilege of MariaDB 10.11 (Debian 12) but SELECT; MariaDB 11.3 and later (Debian 13
# has 11.8) add SHOW CREATE ROUTINE to ALL PRIVILEGES: revoked too where the server has it (below), so the
# frozen account holds SELECT alone on both.
WRITES = ("INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, "
          "EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, DELETE HISTORY")


def sql(statement):
    return subprocess.run(["mysql", "-N", "-B", "-e", statement], check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout


def literal(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(text):
    return "`" + text.replace("`", "``") + "`"


accounts = ["%s@%s" % (literal(user), literal(host)) for host in
            sql("SELECT host FROM mysql.user WHERE user = %s" % literal(user)).split("\n") if host]
target = "%s.*" % identifier(grant)
if mode == "on":
    if "show create routine" in sql("SHOW PRIVILEGES").lower():
        WRITES += ", SHOW CREATE ROUTINE"
    before = int(sql("SELECT COALESCE(MAX(id), 0) FROM information_schema.processlist").strip() or 0)
    for account in accounts:
        # SELECT stays granted throughout (a REVOKE ALL then GRANT SELECT would refuse reads in between).
        sql("GRANT SELECT ON %s TO %s" % (target, account))
        revoked = subprocess.run(["mysql", "-e", "REVOKE %s ON %s FROM %s" % (WRITES, target, account)],
                                 stderr=subprocess.PIPE, universal_newlines=True)
        if revoked.returncode != 0:
            sys.exit("pinned: %s" % revoked.stderr.strip())
    deadline = time.time() + 30
    query = ("SELECT id FROM information_schema.processlist WHERE user = %s AND db = %s AND id <= %d"
             % (literal(user), literal(database), before))
    while True:
        left = [line for line in sql(query).split("\n") if line]
        if not left:
            break
        if time.time() > deadline:
            for connection in left:
                subprocess.run(["mysql", "-e", "KILL CONNECTION %d" % int(connection)])
            print("pinned: ended %d connection(s) of %s to %s still open after 30 s" % (len(left), user, database),
                  file=sys.stderr)
            break
        time.sleep(0.05)
else:
    for account in accounts:
        sql("GRANT ALL PRIVILEGES ON %s TO %s" % (target, account))
    if os.path.exists(undo):
        os.remove(undo)
