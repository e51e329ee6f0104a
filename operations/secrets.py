"""`pinned secret set|unset`: the command that stores or removes one secret in the db host's secrets file.
The value travels on the command's standard input (pinned/secrets.py writes it into the SSH channel), never
on a command line, in a file on this machine, or in any output."""

from __future__ import annotations

from pyinfra.api import StringCommand

from .scripts import run_py


def store_command(path: str, group: str, action: str, name: str) -> StringCommand:
    """set: the value is read from standard input; unset: removes the name and its value."""
    if action not in ("set", "unset"):
        raise ValueError(action)
    return run_py("secret_store.py", path, group, action, name)
