"""Backups of the current schema's database, on the db host (the commands `pinned backup`, `backups`,
`restore`, and the backup `drop-database` takes first).

A backup is one file in the db host's root-only folder (state.layout.Layout.backups_dir), named
`<UTC time>-<database>.sql.gz` (its id: sorts by time, says which database), a consistent dump (mysqldump
--single-transaction --routines --triggers --events, DEFINERs stripped, utf8mb4) compressed with gzip,
written under a temporary name and renamed only when complete and checked. The dump runs as root through
MariaDB's unix socket: no password is read, passed or printed. The scripts are operations/remote/backup.sh
(also installed on the host for the scheduled backups), backup_list.py and restore.sh.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyinfra.api import QuoteString, StringCommand

from pinned.operations.backups import (
    backup_command,
    backup_shared_command,
    list_command,
    restore_command,
    restore_shared_command,
)
from pinned.operations.connection import ChannelError, exchange, run
from pinned.state.layout import Layout


class BackupError(Exception):
    """A backup, a listing or a restore that failed: one line saying which and why."""


@dataclass(frozen=True)
class Backup:
    id: str
    database: str
    bytes: int
    time: str = ""
    seconds: float = 0.0  # how long taking it took (a backup just made)


def _run(host, command) -> tuple[bool, str, str]:
    ok, output = run(host, command)  # as root through sudo when the host's data says so
    return ok, output.stdout.strip(), output.stderr.strip()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def current_database(view) -> str:
    """The database of the release `current` names on the web hosts (the first web host that has one)."""
    for web in view.desired.web_hosts:
        release = view.observed[web.name].current_release
        if release:
            return view.desired.layout.database(release.schema)
    webs = ", ".join(w.name for w in view.desired.web_hosts)
    raise BackupError(f"no release of {view.state.app} is current on {webs}: there is no current database")


def take(host, lay: Layout, database: str, keep: int = 0) -> Backup:
    """A backup of `database` on `host` (the db host); with keep > 0 the app's backups beyond the newest
    `keep` go (the scheduled backups do that; `pinned backup` keeps everything)."""
    started = time.monotonic()
    ok, out, err = _run(host, backup_command(lay.backups_dir, database, keep, lay.backup_id_pattern))
    seconds = time.monotonic() - started
    if not ok:
        raise BackupError(f"backup of {database} on {host.name} failed: {_last_line(err or out)}")
    name, size = _last_line(out).split()
    return Backup(name, database, int(size), seconds=seconds)


def take_shared(host, lay: Layout, names: list[str]) -> Backup:
    """A backup of a web host's shared folders `names` (its uploads), in its own backups folder."""
    started = time.monotonic()
    ok, out, err = _run(host, backup_shared_command(lay.backups_dir, lay.shared_root, names))
    seconds = time.monotonic() - started
    if not ok:
        raise BackupError(f"backup of the shared folders on {host.name} failed: {_last_line(err or out)}")
    name, size = _last_line(out).split()
    return Backup(name, "", int(size), seconds=seconds)


def listing(host, lay: Layout, shared: bool = False) -> list[Backup]:
    """The app's backups on `host`, oldest first: of its databases, or (`shared`) of its shared folders."""
    pattern = lay.shared_backup_pattern if shared else lay.backup_id_pattern
    ok, out, err = _run(host, list_command(lay.backups_dir, pattern))
    if not ok:
        raise BackupError(f"listing the backups on {host.name} failed: {_last_line(err or out)}")
    return [Backup(r["id"], "" if shared else r["database"], r["bytes"], r["time"])
            for r in json.loads(_last_line(out))]


def restore_shared(host, lay: Layout, backup_id: str) -> tuple[str, float]:
    """Write a shared-folders backup back into the host's shared folders (the caller backed them up first
    and holds the deploy lock)."""
    started = time.monotonic()
    ok, out, err = _run(host, restore_shared_command(lay.backup_file(backup_id), lay.shared_root))
    if not ok:
        raise BackupError(f"restoring {backup_id} on {host.name} failed: {_last_line(err or out)}")
    return _last_line(out), time.monotonic() - started


def restore(host, lay: Layout, backup_id: str, database: str) -> tuple[str, float]:
    """Replace `database`'s tables with the backup's (the caller checked that it is a backup of that
    database, took a backup first, and holds the deploy lock). Returns what the host said and the time."""
    started = time.monotonic()
    ok, out, err = _run(host, restore_command(lay.backup_file(backup_id), database))
    if not ok:
        raise BackupError(f"restoring {backup_id} into {database} on {host.name} failed: {_last_line(err or out)}")
    return _last_line(out), time.monotonic() - started


def download(host, lay: Layout, backup: Backup, folder: Path) -> Path:
    """Copy a backup to this machine (streamed over the connection, never held in memory), check it with
    `gzip -t`, and only then give it its name (a partial download never has it). It is read with `cat` on a
    channel of its own (as root through sudo when the host's data says so), not pyinfra's file download:
    through sudo, that copies the file to a temporary file in /tmp readable by every user."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / backup.id
    partial = folder / f".{backup.id}.partial"
    partial.touch(mode=0o600)
    partial.chmod(0o600)  # it holds the site's data
    try:
        with partial.open("wb") as into:
            try:
                exchange(host, StringCommand("cat", "--", QuoteString(lay.backup_file(backup.id))), into=into,
                         timeout=3600)
            except ChannelError as exc:
                raise BackupError(f"downloading {backup.id} failed: {exc}") from None
        if partial.stat().st_size != backup.bytes:
            raise BackupError(f"downloaded {partial.stat().st_size} bytes of {backup.id}, expected {backup.bytes}")
        check = subprocess.run(["gzip", "-t", str(partial)], capture_output=True, text=True)
        if check.returncode != 0:
            raise BackupError(f"the download of {backup.id} is not a valid gzip file: {_last_line(check.stderr)}")
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    return final


def size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
