"""Backups of the current schema's database on the db host: the scheduled backups' timer (an operation),
and the scripts `pinned backup`, `backups`, `restore` run (pinned/backups.py runs them through pyinfra's
API; the same backup script is installed on the host for the timer)."""

from __future__ import annotations

from pyinfra.api import operation

from .scripts import run_py, run_sh, script

BACKUP_SCRIPT = script("backup.sh")  # installed on the db host for the timer, and run by `pinned backup`


def backup_command(folder: str, database: str, keep: int, names: str):
    return run_sh("backup.sh", folder, database, str(keep), names)


def list_command(folder: str, names: str):
    return run_py("backup_list.py", folder, names)


def restore_command(path: str, database: str):
    return run_sh("restore.sh", path, database)


def backup_shared_command(folder: str, shared_root: str, names: list[str]):
    return run_sh("backup_shared.sh", folder, shared_root, *names)


def restore_shared_command(path: str, shared_root: str):
    return run_sh("restore_shared.sh", path, shared_root)


@operation()
def backup_timer(timer: str, enable: bool, remove: tuple[str, ...] = ()):
    """Enable (and restart) the scheduled backups' timer, or disable it and remove its units and script."""
    yield run_sh("backup_timer.sh", timer, "1" if enable else "0", *(() if enable else remove))
