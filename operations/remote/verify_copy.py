# Compare two databases table by table with exact row counts: the copy is used only if they match.
# python3 -c TEXT SOURCE COPY (copy_database.sh runs it). Runs ON the host: standard library only.
import sys

from mysql_lib import counts, tables

src, dst = sys.argv[1:3]

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
