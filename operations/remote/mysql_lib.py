# Shared by the scripts that query MariaDB on the host as root, through its socket (verify_copy.py,
# adopt_database.py): each imports it on one line (`from mysql_lib import …`), which operations/scripts.py's
# script() replaces with this text, so on the host each still runs as one `python3 -c TEXT`. Standard library only.
import subprocess


def name(text):
    """An identifier (database, table), quoted for SQL."""
    return "`" + text.replace("`", "``") + "`"


def literal(text):
    """A string, quoted for SQL."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def q(sql):
    """The rows of one query (or several statements' rows), as lists of fields; a failure raises."""
    out = subprocess.run(["mysql", "-N", "-B", "-e", sql], check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def tables(db):
    """The database's tables (not its views), sorted."""
    return sorted(r[0] for r in q("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                                  "AND table_type = 'BASE TABLE'" % literal(db)))


def counts(db, names):
    """{table: exact row count} of the named tables, in one query."""
    if not names:
        return {}
    sql = " UNION ALL ".join("SELECT %s, COUNT(*) FROM %s.%s" % (literal(t), name(db), name(t)) for t in names)
    return {r[0]: int(r[1]) for r in q(sql)}
