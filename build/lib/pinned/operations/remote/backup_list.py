# Runs ON the db host (python3, standard library only), as root: the app's backups as one JSON line,
# oldest first: [{id, database, bytes, time}]. Only files named as the app's backups (a partial one,
# `.<id>.partial`, is not). Reads, never writes. argv: the folder, the app's backup name pattern.
import json
import os
import re
import sys

folder, pattern = sys.argv[1], re.compile(sys.argv[2])
rows = []
try:
    names = sorted(os.listdir(folder))
except FileNotFoundError:
    names = []
for name in names:
    path = os.path.join(folder, name)
    if pattern.search(name) and os.path.isfile(path):
        stamp = name[:16]
        rows.append({"id": name, "database": name[17:-len(".sql.gz")], "bytes": os.path.getsize(path),
                     "time": "%s-%s-%sT%s:%s:%sZ" % (stamp[0:4], stamp[4:6], stamp[6:8], stamp[9:11], stamp[11:13],
                                                     stamp[13:15])})
print(json.dumps(rows))
