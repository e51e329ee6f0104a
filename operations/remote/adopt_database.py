# Adopt a promoted preview's own database as a schema version's (`promote: keep-data`): every table of
# SOURCE is renamed into a new, empty TARGET in one RENAME TABLE statement (atomic in MariaDB, and fast: no
# row is copied), checked (the same tables, the same exact row counts, nothing left in SOURCE), then the
# emptied SOURCE is dropped. Views, triggers, routines and events cannot move that way: then nothing is changed.
#   python3 -c TEXT SOURCE TARGET RECREATE     (RECREATE 1: drop a leftover TARGET first)
# Runs ON the host (root, through mysql's socket): standard library only.
import subprocess
import sys

from mysql_lib import counts, literal, name, q, tables


def others(db):
    """What RENAME TABLE cannot carry to another database: (kind, count) of views, triggers, routines, events."""
    checks = (("views", "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = %s"),
              ("triggers", "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = %s"),
              ("routines", "SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = %s"),
              ("events", "SELECT COUNT(*) FROM information_schema.events WHERE event_schema = %s"))
    found = [(kind, int(q(sql % literal(db))[0][0])) for kind, sql in checks]
    return [(kind, n) for kind, n in found if n]


def rename(src, dst, names):
    q("RENAME TABLE " + ", ".join("%s.%s TO %s.%s" % (name(src), name(t), name(dst), name(t)) for t in names))


def main(src, dst, recreate):
    if not q("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s" % literal(src)):
        sys.exit("pinned: the preview's database %s is missing: nothing to adopt into %s (nothing changed)"
                 % (src, dst))
    extra = others(src)
    if extra:
        sys.exit("pinned: %s has %s, which RENAME TABLE cannot move into %s: nothing changed; set `promote: "
                 "fresh-copy` on the preview" % (src, ", ".join("%d %s" % (n, k) for k, n in extra), dst))
    names = tables(src)
    before = counts(src, names)
    if recreate == "1":
        q("DROP DATABASE IF EXISTS %s" % name(dst))
    q("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % name(dst))
    try:
        if names:
            rename(src, dst, names)
    except subprocess.CalledProcessError:
        q("DROP DATABASE IF EXISTS %s" % name(dst))  # the one statement failed whole: dst is still empty
        sys.exit("pinned: renaming the tables of %s into %s failed (mysql's message above): %s was dropped, %s "
                 "is unchanged" % (src, dst, dst, src))
    moved, left = tables(dst), tables(src)
    after = counts(dst, moved)
    if moved != names or left or after != before:
        rename(dst, src, [t for t in moved if t in names])
        q("DROP DATABASE IF EXISTS %s" % name(dst))
        sys.exit("pinned: adopting %s into %s did not check out (tables or row counts differ): its tables were "
                 "renamed back, %s dropped" % (src, dst, dst))
    q("DROP DATABASE %s" % name(src))
    print("adopted %s into %s: %d tables, %d rows (renamed, not copied); %s dropped"
          % (src, dst, len(names), sum(before.values()), src))


if __name__ == "__main__":
    main(*sys.argv[1:4])
