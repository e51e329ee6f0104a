"""Managed config files and atomic links."""

from __future__ import annotations

import posixpath
from io import StringIO

from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from .scripts import chain, run_sh, script, sh  # noqa: F401 (sh: operations.files.sh stays importable)

# Sets fields of a release's metadata: python3 -c "$RELEASE_META" RELEASE_DIR key=value ... (atomic write).
RELEASE_META = script("release_meta.py")
# A release's files as git names them (mode, blob id): python3 -c "$RELEASE_FILES" write|show RELEASE_DIR.
RELEASE_FILES = script("release_files.py")


@operation()
def config_file(path: str, content: str, mode: str = "0644", owner: str = "root", group: str = "root",
                reload: str = ""):
    """Write a config file atomically (upload beside it, then rename); reload what reads it."""
    tmp = f"{path}.pinned-tmp"
    yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(path)))
    yield FileUploadCommand(StringIO(content), tmp)
    # One round trip after the upload: owner, mode, into place, reload (each only if the one before succeeded).
    steps = [StringCommand("chown", QuoteString(f"{owner}:{group}"), QuoteString(tmp)),
             StringCommand("chmod", QuoteString(mode), QuoteString(tmp))]
    if reload == "nginx":
        steps.append(run_sh("config_nginx.sh", path))
    else:
        steps.append(StringCommand("mv", "-f", QuoteString(tmp), QuoteString(path)))
    if reload == "systemd":
        steps.append(StringCommand("systemctl", "daemon-reload"))
    if reload == "mariadb":
        steps.append(StringCommand("systemctl", "restart", "mariadb"))
    yield chain(*steps)


@operation()
def nothing():
    """A slot of the plan with no step for this host (keeps every host on the same sequence of slots)."""
    yield from ()


@operation()
def remove_file(path: str, reload: str = ""):
    """Remove a file (e.g. Debian's default nginx site), reloading what read it."""
    yield StringCommand("rm", "-f", QuoteString(path))
    if reload == "nginx":
        yield run_sh("nginx_test_reload.sh")


def atomic_link_command(link: str, target: str) -> StringCommand:
    """`ln -s target tmp && mv -T tmp link`: the link is never missing (never pyinfra's files.link)."""
    return run_sh("atomic_link.sh", link, target)


@operation()
def link(path: str, target: str):
    """Point a symlink at a target atomically, then verify it."""
    yield atomic_link_command(path, target)
