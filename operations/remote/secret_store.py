# `pinned secret set|unset`: python3 -c TEXT SECRETS_FILE GROUP set NAME (the value on standard input, never
# an argument) or ... unset NAME. The file's other lines are kept as they are; it is written beside it and
# renamed: root:GROUP 0640 (root:root 0600 while the app's group does not exist yet: the first deploy sets it).
# A value is stored in double quotes, `\ " $ `` escaped, as systemd's EnvironmentFile= reads it back. Prints
# nothing of the value. Runs ON the host, as root: standard library only.
import grp
import os
import sys

path, group, action, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
lines = []
if os.path.exists(path):
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle]
kept = [line for line in lines if line.partition("=")[0] != name]
if action == "set":
    value = sys.stdin.buffer.read().decode("utf-8")
    if any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in value):
        sys.exit("pinned: the value has a newline or another control character: not stored")
    kept.append(name + '="' + "".join("\\" + ch if ch in '\\"$`' else ch for ch in value) + '"')
elif len(kept) == len(lines):
    sys.exit("pinned: %s has no value on this host: nothing to remove" % name)
try:
    gid, mode = grp.getgrnam(group).gr_gid, 0o640
except KeyError:
    gid, mode = 0, 0o600
folder = os.path.dirname(path)
os.makedirs(folder, mode=0o700, exist_ok=True)
os.chown(folder, 0, gid)
os.chmod(folder, 0o750 if gid else 0o700)
tmp = path + ".pinned-tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as handle:
    handle.write("".join(line + "\n" for line in sorted(kept)))
os.chown(tmp, 0, gid)
os.chmod(tmp, mode)
os.rename(tmp, path)
