# Generated on the server, never sent or printed: keeps values that exist, adds missing ones.
# python3 -c TEXT SECRETS_FILE GROUP [NAME...]: the file is written beside it then renamed, root:GROUP, 0640;
# the NAMEs given (secrets no longer declared) are removed; a +NAME gets a generated value if it has none
# (a preview's database password). Lines are kept as they are (a value is never parsed).
# Runs ON the host, as root: standard library only.
import grp
import os
import secrets
import sys

path, group = sys.argv[1], sys.argv[2]
drop = set(a for a in sys.argv[3:] if not a.startswith("+"))
generate = [a[1:] for a in sys.argv[3:] if a.startswith("+")]
values = {}
if os.path.exists(path):
    for line in open(path):
        key, sep, value = line.rstrip("\n").partition("=")
        if sep and not key.startswith("#") and key not in drop:
            values[key] = value
values.setdefault("DB_PASSWORD", secrets.token_urlsafe(32))
values.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
for name in generate:
    values.setdefault(name, secrets.token_urlsafe(32))
tmp = path + ".pinned-tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as handle:
    handle.write("".join("%s=%s\n" % item for item in sorted(values.items())))
os.chown(tmp, 0, grp.getgrnam(group).gr_gid)
os.chmod(tmp, 0o640)
os.rename(tmp, path)
