"""A schema change's write freeze: web hosts refuse writes, the db host lets the app only read the database
being copied; lifted after the switch. Each turning-on also leaves an undo hook with the lock (pinned/lock.py
runs it if the run ends without lifting the freeze: killed, failed, cut off)."""

from __future__ import annotations

from io import StringIO

from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from pinned.state import changes as c

from .scripts import run_py, run_sh


def web_command(on: bool, conf: str, content: str, marker: str, undo: str) -> StringCommand:
    return run_sh("freeze_web.sh", "on" if on else "off", conf, content, marker, undo)


def database_command(on: bool, user: str, grant: str, database: str, undo: str) -> StringCommand:
    return run_py("db_freeze.py", "on" if on else "off", user, grant, database, undo)


def undo_text(change: c.WriteFreeze | c.DatabaseGuard) -> str:
    """The lock's undo hook for a freeze being turned on: a shell script running the command that lifts it."""
    if isinstance(change, c.WriteFreeze):
        command = web_command(False, change.conf, change.off_content, change.marker, change.undo)
    else:
        command = database_command(False, change.user, change.grant, change.database, change.undo)
    return f"#!/bin/sh\n# Written by pinned: lifts a write freeze its run did not lift.\n{command.get_raw_value()}\n"


def _undo_dir(undo: str) -> StringCommand:
    return StringCommand("install", "-d", "-m", "0700", QuoteString(undo.rsplit("/", 1)[0]))


@operation()
def write_freeze(on: bool, conf: str, content: str, off_content: str, marker: str, undo: str):
    """Refuse writes on this web host (nginx: 503 + Retry-After), or let them through again."""
    if on:
        yield _undo_dir(undo)
        yield FileUploadCommand(StringIO(undo_text(c.WriteFreeze(on, conf, content, off_content, marker, undo))), undo)
    yield web_command(on, conf, content, marker, undo)


@operation()
def database_guard(on: bool, user: str, grant: str, database: str, undo: str):
    """Let the app's accounts only read `database` (once their earlier connections ended), or write again."""
    if on:
        yield _undo_dir(undo)
        yield FileUploadCommand(StringIO(undo_text(c.DatabaseGuard(on, user, grant, database, undo))), undo)
    yield database_command(on, user, grant, database, undo)
