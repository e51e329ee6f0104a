# Compare two databases table by table with exact row counts: the copy is used only if they match.
# python3 -c TEXT SOURCE COPY (copy_database.sh runs it). Runs ON the host: standard library only.
import subprocess
import sys

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
