# Runs ON the host (python3, standard library only), as root: prints everything pinned needs to know
# about one app on this host as one JSON document, in one round trip. Reads, never writes.
# Secrets are never read: only whether the secrets file exists, its mode and which keys it defines.
#
# Every probe (a command run here) says which exit statuses it expects and what they mean; any other
# outcome is an error, collected into "errors" ({probe, status, detail}) while the script keeps going,
# so one round trip reports every problem. The script itself always exits 0 and prints one JSON line:
# a failure never passes for "absent" (the parser refuses output with errors).
import glob
import hashlib
import grp
import json
import os
import platform
import pwd
import re
import stat
import subprocess
import ssl
import sys
import time
import traceback

from secrets_lib import secret_fingerprints, secret_pairs

# Words `systemctl is-active` / `is-enabled` print on stdout (also with a non-zero exit status).
STATE_WORD = re.compile(r"^[a-z][a-z-]*$")

errors = []


def probe(cmd, env=None):
    """Run one probe: (stdout, stderr, exit status). A command that cannot be started has status 127."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=env)
    except OSError as exc:
        return "", "%s: %s" % (cmd[0], exc.strerror or exc), 127
    return (proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"), proc.returncode)


def fail(name, status, stderr, stdout="", context=""):
    """Record an unexpected probe outcome: the first lines of stderr (or stdout if stderr is empty)."""
    lines = [line for line in (stderr.strip() or stdout.strip()).splitlines() if line.strip()][:3]
    detail = "\n".join(lines) or "exit status %s, no output" % status
    errors.append({"probe": name, "status": status, "detail": (context + ": " if context else "") + detail})


# dpkg-query and systemctl print fixed English words only in the C locale.
C_LOCALE = dict(os.environ, LC_ALL="C", LANG="C", LANGUAGE="")


def observe_packages(names):
    """Debian packages that are installed (of those asked about). dpkg-query exits 0 when it knows every
    name and 1 when some were never installed (it still prints the others): both are answers."""
    if not names:
        return []
    stdout, stderr, status = probe(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + names,
                                   env=C_LOCALE)
    if status not in (0, 1):
        fail("packages", status, stderr, stdout)
    return sorted(line.split()[0] for line in stdout.splitlines() if line.endswith(" installed"))


def unit_states(names):
    """`systemctl show` of the units in `names`, in one call: {name: {"active": ActiveState, "enabled":
    UnitFileState == "enabled"}}, one block per unit in the order asked (a unit that does not exist is
    inactive, with an empty UnitFileState: not enabled). systemd unreachable, or an answer that does not hold
    one block per unit, is an error, and every state is None."""
    stdout, stderr, status = probe(["systemctl", "show", "--property=ActiveState,UnitFileState", "--"]
                                   + list(names), env=C_LOCALE)
    blocks = [dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
              for block in stdout.strip().split("\n\n")] if stdout.strip() else []
    if status != 0 or len(blocks) != len(names) or not all(STATE_WORD.match(b.get("ActiveState", ""))
                                                           for b in blocks):
        fail("unit-state", status, stderr, stdout, context=", ".join(names))
        return {name: {"active": None, "enabled": None} for name in names}
    return {name: {"active": b["ActiveState"], "enabled": b.get("UnitFileState") == "enabled"}
            for name, b in zip(names, blocks)}


def observe_units(unit_prefix, others=(), prefixes=()):
    """systemd: the app's release units (named `<unit_prefix><release>.<kind>`), the services pinned
    relies on, the `others` asked for (the scheduled backups' timer), and the units named by the other
    `prefixes` (its processes' and schedules', the timers of warm releases). Two commands whatever the number
    of units: `list-units` (its ACTIVE column is the unit's ActiveState, what `is-active` prints) and one
    `systemctl show` for the named ones."""
    units = {}
    stdout, stderr, status = probe(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager",
                                    unit_prefix + "*"] + [p + "*" for p in prefixes], env=C_LOCALE)
    if status != 0:
        fail("units", status, stderr, stdout)
        stdout = ""
    for line in stdout.splitlines():
        words = line.split()  # UNIT LOAD ACTIVE SUB DESCRIPTION...
        if not words:
            continue
        if len(words) < 3 or not STATE_WORD.match(words[2]):
            fail("units", status, "", line, context="a line of systemctl list-units")
            units[words[0]] = {"active": None, "enabled": False}
            continue
        if words[1] == "not-found" and words[2] == "inactive":
            # A stub systemd keeps, until it forgets it, for a name it was asked about with no unit file there
            # (a removed preview's or release's unit): nothing runs and nothing defines it, so no unit at all.
            continue
        units[words[0]] = {"active": words[2], "enabled": False}
    for prefix in (unit_prefix,) + tuple(prefixes):
        for link in glob.glob("/etc/systemd/system/*.wants/" + prefix + "*"):
            units.setdefault(os.path.basename(link), {"active": "inactive"})["enabled"] = True
    units.update(unit_states(("nginx.service", "mariadb.service") + tuple(others)))
    return units


def observe_timers(prefixes, units):
    """When each active timer named by `prefixes` elapses next (`list-timers`' NEXT, e.g. `Thu 2026-11-26
    18:10:00 UTC`), for `pinned releases`; asked only when there is one."""
    active = [u for u, st in units.items() if u.endswith(".timer") and st.get("active") == "active"
              and any(u.startswith(p) for p in prefixes)]
    if not active:
        return {}
    stdout, stderr, status = probe(["systemctl", "list-timers", "--all", "--plain", "--no-legend", "--no-pager"]
                                   + active, env=dict(C_LOCALE, TZ="UTC"))
    if status != 0:
        fail("timers", status, stderr, stdout)
        return {}
    timers = {}
    for line in stdout.splitlines():
        words = line.split()
        name = next((w for w in words if w in active), None)
        if name and len(words) > 4 and re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", words[1]):
            timers[name] = " ".join(words[1:4])
    return timers


def mysql_query(name, sql, raw=False):
    """One query through root's unix socket. Only called while mariadb.service is active, so any failure
    (exit status non-zero) is an error, never "no databases"; the result is then None."""
    stdout, stderr, status = probe(["mysql", "-N", "-B"] + (["-r"] if raw else []) + ["-e", sql])
    if status != 0:
        fail(name, status, stderr, stdout)
        return None
    return stdout


def observe_mysql(db_pattern, db_user, mariadb_active, preview_regex=None):
    """MariaDB: the app's databases (names matching the REGEXP `db_pattern`) with their sizes, its account
    `db_user`@… and their grants; with `preview_regex`, the previews' databases and accounts (names matching
    it) too, as "previews": {databases, users}. Two mysql commands whatever the number of databases and
    accounts: one for names and sizes (each row tagged with what it is), one for every account's grants
    (each SHOW GRANTS after a marker row naming the account)."""
    mysql = {"running": False, "databases": [], "users": {}}
    previews = {"databases": [], "users": {}}
    if mariadb_active != "active":
        return mysql, previews
    tagged = ["SELECT 'db', schema_name FROM information_schema.schemata WHERE schema_name REGEXP '%s'"
              % db_pattern,
              "SELECT 'user', CONCAT(user, '@', host) FROM mysql.user WHERE user = '%s'" % db_user]
    if preview_regex:
        tagged += ["SELECT 'pv-db', schema_name FROM information_schema.schemata WHERE schema_name REGEXP '%s'"
                   % preview_regex,
                   "SELECT 'pv-user', CONCAT(user, '@', host) FROM mysql.user WHERE user REGEXP '%s'"
                   % preview_regex]
    query = mysql_query("mysql-databases", " UNION ALL ".join(tagged) + ";"
                        "SELECT 'stats', table_schema, COUNT(*), COALESCE(SUM(table_rows), 0), "
                        "COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                        "WHERE table_schema REGEXP '%s' AND table_type = 'BASE TABLE' GROUP BY table_schema"
                        % db_pattern)
    if query is None:
        return mysql, previews
    mysql["running"] = True
    accounts = []  # (the dict its grants go into, user, host)
    for line in query.splitlines():
        tag, _, rest = line.partition("\t")
        if tag == "stats":
            name, tables, rows, size = rest.split("\t")
            mysql.setdefault("stats", {})[name] = [int(tables), int(rows), int(size)]
        elif tag in ("db", "pv-db"):
            (mysql if tag == "db" else previews)["databases"].append(rest)
        elif tag in ("user", "pv-user"):
            user, _, host = rest.partition("@")
            accounts.append(((mysql if tag == "user" else previews)["users"], user, host))
    if not accounts:
        return mysql, previews
    grants = mysql_query("mysql-grants", "".join("SELECT '@@%d';SHOW GRANTS FOR '%s'@'%s';" % (i, user, host)
                                                 for i, (_, user, host) in enumerate(accounts)), raw=True)
    if grants is None:
        return mysql, previews
    lines = {}
    number = None
    for line in grants.splitlines():
        if re.match(r"^@@[0-9]+$", line):
            number = int(line[2:])
            lines[number] = []
        elif number is not None and not line.startswith("GRANT USAGE"):
            lines[number].append(re.sub(r" IDENTIFIED BY .*", "", line))
    for i, (into, user, host) in enumerate(accounts):
        if i not in lines:
            fail("mysql-grants", 0, "", "no grants printed for '%s'@'%s'" % (user, host))
            continue
        into[user + "@" + host] = sorted(lines[i])
    return mysql, previews


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


def observe_users(names):
    users = {}
    for name in names:
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
    return users


def observe_files(paths):
    files = {}
    for path in paths:
        try:
            with open(path) as handle:
                files[path] = {"content": handle.read(), **describe(path)}
        except (OSError, UnicodeDecodeError):
            files[path] = None
    return files


def observe_secrets(path):
    secrets = describe(path)
    if secrets:
        # Which keys are defined, and a digest to tell whether two hosts hold the same secrets (a SHA-256 of
        # high-entropy values reveals nothing of them).
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            pairs = secret_pairs(data)
            secrets["keys"] = sorted(key.decode() for key, _ in pairs)
            secrets["digest"] = hashlib.sha256(data).hexdigest()
            secrets["fingerprints"] = secret_fingerprints(pairs)  # keyed: which values changed, never what
        except OSError:
            secrets["keys"] = []
    return secrets


def parse_x509_text(text):
    """`openssl x509 -noout -subject -issuer -enddate -serial -ext subjectAltName -nameopt RFC2253` output
    (state/tls.py parses the same on the deploying machine)."""
    out = {"names": []}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if sep and key in ("subject", "issuer", "serial", "notAfter"):
            out[key] = value.strip()
        elif "Subject Alternative Name" in line and i + 1 < len(lines):
            out["names"] = [part.strip()[4:] for part in lines[i + 1].split(",") if part.strip().startswith("DNS:")]
    expires = int(ssl.cert_time_to_seconds(out["notAfter"])) if out.get("notAfter") else 0
    return {"subject": out.get("subject", ""), "issuer": out.get("issuer", ""), "names": out["names"],
            "expires": expires, "not_after": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)),
            "serial": out.get("serial", "")}


def observe_certificates(paths):
    """The certificates nginx serves (site.tls), as `openssl x509` reads them: None when the file (or the link's
    target) is missing; {"invalid": why} when openssl cannot read it (the plan replaces it)."""
    found = {}
    for path in paths:
        if not os.path.exists(path):
            found[path] = None
            continue
        stdout, stderr, status = probe(["openssl", "x509", "-in", path, "-noout", "-subject", "-issuer", "-enddate",
                                        "-serial", "-ext", "subjectAltName", "-nameopt", "RFC2253"], env=C_LOCALE)
        if status == 127:
            fail("certificates", status, stderr, stdout, context=path)
            found[path] = None
        elif status != 0:
            found[path] = {"invalid": (stderr.strip() or stdout.strip() or "unreadable").splitlines()[0]}
        else:
            found[path] = parse_x509_text(stdout)
    return found


def observe_keys(paths):
    """Private keys: owner and mode, and a SHA-256 of their public half (never anything of the key itself)."""
    found = {}
    for path in paths:
        info = describe(path)
        if info is None or not os.path.exists(path):
            found[path] = None
            continue
        stdout, stderr, status = probe(["openssl", "pkey", "-in", path, "-pubout", "-passin", "pass:"], env=C_LOCALE)
        if status == 127:
            fail("keys", status, stderr, stdout, context=path)
        info["public_key"] = hashlib.sha256("".join(stdout.split()).encode()).hexdigest() if status == 0 else ""
        found[path] = info
    return found


def observe_tree(root):
    """The release tree: every schema version, its releases' metadata, the links. One pass."""
    tree = {"current": None, "schemas": {}, "by_id": {}, "venvs": [], "building": []}
    current = describe(root + "/current")
    if current and current["type"] == "link":
        tree["current"] = current["target"]
        # what its assets/ were made from (collectstatic.py): a release built from it may take them as they are
        tree["current_static"] = read_json(root + "/current/.pinned/static_sources.json")
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
    return tree


def observe_history(path):
    try:
        with open(path) as handle:
            return handle.read().splitlines()[-50:]
    except OSError:
        return []


def observe_previews(ask, units, mysql):
    """The app's previews on this host (pinned previews): their unit files and nginx servers (globs), their
    units' states (from `units`, the host's listing: its `<app>-` prefix covers the previews' `<app>-pv-`), and
    on the db host their databases and accounts with grants (`mysql`: read with the app's, observe_mysql)."""
    if not ask:
        return {}
    return {"files": observe_files(sorted(p for pattern in ask["globs"] for p in glob.glob(pattern))),
            "units": {u: st for u, st in units.items() if u.startswith(ask["unit_prefix"])},
            "databases": mysql["databases"], "users": mysql["users"]}


def main(args):
    app = args["app"]
    out = {"python": "%d.%d" % sys.version_info[:2], "python_version": platform.python_version()}
    out["packages"] = observe_packages(args["packages"])
    out["users"] = observe_users([app] + args["users"])
    out["paths"] = {path: describe(path) for path in args["paths"]}
    out["files"] = observe_files(args["files"])
    out["secrets"] = observe_secrets(args["secrets"])
    out["loaded"] = read_json(args["loaded"]) if args.get("loaded") else None
    out["tree"] = observe_tree(args["root"])
    out["history"] = observe_history(args["history"])
    extra = tuple(args.get("extra_unit_prefixes", ()))
    warm_prefixes = tuple(args.get("unit_prefixes", ()))
    out["units"] = observe_units(args["unit_prefix"], args.get("units", ()), extra + warm_prefixes)
    out["unit_files"] = sorted(os.path.basename(p) for prefix in extra
                               for p in glob.glob("/etc/systemd/system/" + prefix + "*") if os.path.isfile(p))
    out["timers"] = observe_timers(warm_prefixes, out["units"])
    previews = args.get("previews")
    out["mysql"], preview_mysql = observe_mysql(args["db_pattern"], app, out["units"]["mariadb.service"]["active"],
                                                previews["db_regex"] if previews else None)
    out["now"] = int(time.time())
    out["certificates"] = observe_certificates(args.get("certificates", ()))
    out["keys"] = observe_keys(args.get("keys", ()))
    out["previews"] = observe_previews(previews, out["units"], preview_mysql)
    return out


try:
    out = main(json.loads(sys.argv[1]))
except Exception:  # a bug or a surprise in this script: report it as the observe probe, never as "absent"
    out = {"python": "%d.%d" % sys.version_info[:2]}
    fail("observe", 1, "".join(traceback.format_exc().strip().splitlines(True)[-3:]))
if errors:
    out["errors"] = errors
print(json.dumps(out, sort_keys=True))
