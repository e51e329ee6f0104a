# Runs ON the host (python3, standard library only), as root: prints everything pinned needs to know
# about one app on this host as one JSON document, in one round trip. Reads, never writes.
# Secrets are never read: only whether the secrets file exists, its mode and which keys it defines.
import glob
import hashlib
import grp
import json
import os
import pwd
import re
import stat
import subprocess
import sys

args = json.loads(sys.argv[1])
app = args["app"]
root = "/srv/" + app
out = {"python": "%d.%d" % sys.version_info[:2]}


def run(cmd):
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def describe(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    info = {"mode": "%04o" % stat.S_IMODE(st.st_mode)}
    try:
        info["owner"] = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        info["owner"] = str(st.st_uid)
    try:
        info["group"] = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        info["group"] = str(st.st_gid)
    if stat.S_ISLNK(st.st_mode):
        info["type"] = "link"
        info["target"] = os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        info["type"] = "dir"
    else:
        info["type"] = "file"
    return info


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


# Debian packages that are installed (of those asked about).
listing = run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + args["packages"]) or ""
out["packages"] = sorted(line.split()[0] for line in listing.splitlines() if line.endswith(" installed"))

users = {}
for name in [app] + args["users"]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        continue
    groups = sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem)
    keys = None
    try:
        with open(os.path.join(entry.pw_dir, ".ssh", "authorized_keys")) as handle:
            keys = handle.read()
    except OSError:
        pass
    users[name] = {"home": entry.pw_dir, "shell": entry.pw_shell, "group": grp.getgrgid(entry.pw_gid).gr_name,
                   "groups": groups, "authorized_keys": keys}
out["users"] = users

out["paths"] = {path: describe(path) for path in args["paths"]}

files = {}
for path in args["files"]:
    try:
        with open(path) as handle:
            files[path] = {"content": handle.read(), **describe(path)}
    except (OSError, UnicodeDecodeError):
        files[path] = None
out["files"] = files

secrets = describe(args["secrets"])
if secrets:
    # Which keys are defined, and a digest to tell whether two hosts hold the same secrets (a SHA-256 of
    # high-entropy values reveals nothing of them).
    try:
        with open(args["secrets"], "rb") as handle:
            data = handle.read()
        secrets["keys"] = sorted(line.split(b"=", 1)[0].decode() for line in data.splitlines() if b"=" in line)
        secrets["digest"] = hashlib.sha256(data).hexdigest()
    except OSError:
        secrets["keys"] = []
out["secrets"] = secrets

# The release tree: every schema version, its releases' metadata, the links. One pass.
tree = {"current": None, "schemas": {}, "by_id": {}, "venvs": [], "building": []}
current = describe(root + "/current")
if current and current["type"] == "link":
    tree["current"] = current["target"]
for schema_dir in sorted(glob.glob(root + "/versions/*")):
    number = os.path.basename(schema_dir)
    if not number.isdigit() or not os.path.isdir(schema_dir):
        continue
    schema = {"info": read_json(schema_dir + "/schema.json"), "last": None, "releases": {},
              "served": os.path.exists(schema_dir + "/served")}
    for entry in sorted(os.listdir(schema_dir)):
        path = os.path.join(schema_dir, entry)
        if entry == "last":
            schema["last"] = os.readlink(path) if os.path.islink(path) else None
        elif entry.endswith(".building"):
            tree["building"].append(path)
        elif os.path.isdir(path) and not os.path.islink(path):
            meta = read_json(path + "/.pinned/release.json")
            schema["releases"][entry] = meta if meta is not None else {"status": "unknown"}
    tree["schemas"][number] = schema
for link in sorted(glob.glob(root + "/by-id/*")):
    if os.path.islink(link):
        tree["by_id"][os.path.basename(link)] = os.readlink(link)
for venv in sorted(glob.glob(root + "/venvs/*")):
    if os.path.exists(venv + "/.pinned-ready"):
        tree["venvs"].append(os.path.basename(venv))
out["tree"] = tree

try:
    with open(args["history"]) as handle:
        out["history"] = handle.read().splitlines()[-50:]
except OSError:
    out["history"] = []

# systemd: the app's release units, and the services pinned relies on.
units = {}
listing = run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager", app + "@*"]) or ""
names = [line.split()[0] for line in listing.splitlines() if line.strip()]
enabled = glob.glob("/etc/systemd/system/*.wants/" + app + "@*")
for name in names:
    units[name] = {"active": (run(["systemctl", "is-active", name]) or "inactive").strip(), "enabled": False}
for link in enabled:
    name = os.path.basename(link)
    units.setdefault(name, {"active": "inactive"})["enabled"] = True
for name in ("nginx.service", "mariadb.service"):
    units[name] = {"active": (run(["systemctl", "is-active", name]) or "inactive").strip(),
                   "enabled": (run(["systemctl", "is-enabled", name]) or "").strip() == "enabled"}
out["units"] = units

# MariaDB, through root's unix socket: the app's databases, its users and their grants.
mysql = {"running": False, "databases": [], "users": {}}
if units["mariadb.service"]["active"] == "active":
    query = run(["mysql", "-N", "-B", "-e",
                 "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '%s\\_v%%';"
                 "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user = '%s'" % (app.replace("_", "\\_"), app)])
    if query is not None:
        mysql["running"] = True
        stats = run(["mysql", "-N", "-B", "-e",
                     "SELECT table_schema, COUNT(*), COALESCE(SUM(table_rows), 0), "
                     "COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                     "WHERE table_schema LIKE '%s\\_v%%' AND table_type = 'BASE TABLE' GROUP BY table_schema"
                     % app.replace("_", "\\_")]) or ""
        for line in stats.splitlines():
            name, tables, rows, size = line.split("\t")
            mysql.setdefault("stats", {})[name] = [int(tables), int(rows), int(size)]
        for line in query.splitlines():
            if "@" in line:
                user, _, host = line.partition("@")
                grants = run(["mysql", "-N", "-B", "-r", "-e", "SHOW GRANTS FOR '%s'@'%s'" % (user, host)]) or ""
                mysql["users"][line] = sorted(re.sub(r" IDENTIFIED BY .*", "", g) for g in grants.splitlines()
                                              if not g.startswith("GRANT USAGE"))
            elif line:
                mysql["databases"].append(line)
out["mysql"] = mysql

print(json.dumps(out, sort_keys=True))
