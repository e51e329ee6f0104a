"""Managed config files and atomic links."""

from __future__ import annotations

import posixpath
from io import StringIO

from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation


def sh(script: str, *args: str) -> StringCommand:
    """A fixed shell script run with its values as positional arguments ($1, $2, …), each quoted."""
    return StringCommand("sh", "-c", QuoteString(script), "pinned", *(QuoteString(str(a)) for a in args))


# Sets fields of a release's metadata: python3 -c "$RELEASE_META" RELEASE_DIR key=value ... (atomic write).
RELEASE_META = r'''
import json, os, sys
path = sys.argv[1] + "/.pinned/release.json"
with open(path) as handle:
    meta = json.load(handle)
meta.update(arg.split("=", 1) for arg in sys.argv[2:])
with open(path + ".tmp", "w") as handle:
    json.dump(meta, handle, sort_keys=True)
os.replace(path + ".tmp", path)
'''


# nginx: test the new config, put the old one back if it fails, reload only a running nginx.
NGINX_CHECK = (
    'if ! out=$(nginx -t 2>&1); then echo "$out" >&2; '
    'if [ -e "$1.pinned-old" ]; then mv -f "$1.pinned-old" "$1"; else rm -f "$1"; fi; exit 1; fi; '
    'rm -f "$1.pinned-old"; if systemctl is-active --quiet nginx; then systemctl reload nginx; fi'
)


@operation()
def config_file(path: str, content: str, mode: str = "0644", owner: str = "root", group: str = "root",
                reload: str = ""):
    """Write a config file atomically (upload beside it, then rename); reload what reads it."""
    tmp = f"{path}.pinned-tmp"
    yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(path)))
    yield FileUploadCommand(StringIO(content), tmp)
    yield StringCommand("chown", QuoteString(f"{owner}:{group}"), QuoteString(tmp))
    yield StringCommand("chmod", QuoteString(mode), QuoteString(tmp))
    if reload == "nginx":
        yield sh('if [ -e "$1" ]; then cp -p "$1" "$1.pinned-old"; fi; mv -f "$1.pinned-tmp" "$1"; ' + NGINX_CHECK,
                 path)
    else:
        yield StringCommand("mv", "-f", QuoteString(tmp), QuoteString(path))
    if reload == "systemd":
        yield "systemctl daemon-reload"
    if reload == "mariadb":
        yield "systemctl restart mariadb"


@operation()
def nothing():
    """A slot of the plan with no step for this host (keeps every host on the same sequence of slots)."""
    yield from ()


@operation()
def remove_file(path: str, reload: str = ""):
    """Remove a file (e.g. Debian's default nginx site), reloading what read it."""
    yield StringCommand("rm", "-f", QuoteString(path))
    if reload == "nginx":
        yield sh('if systemctl is-active --quiet nginx; then nginx -t && systemctl reload nginx; fi')


def atomic_link_command(link: str, target: str) -> StringCommand:
    """`ln -s target tmp && mv -T tmp link`: the link is never missing (never pyinfra's files.link)."""
    return sh('tmp="$(dirname "$1")/.$(basename "$1").pinned-tmp"; rm -f "$tmp"; ln -s "$2" "$tmp"; '
              'mv -T "$tmp" "$1"; [ "$(readlink "$1")" = "$2" ]', link, target)


@operation()
def link(path: str, target: str):
    """Point a symlink at a target atomically, then verify it."""
    yield atomic_link_command(path, target)
