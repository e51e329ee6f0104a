"""The app's secrets on the db host (the commands `pinned secret set`, `list`, `unset`).

Values live only in the db host's secrets file (state.layout.Layout.secrets, root:<app> 0640), from where a
deploy carries them to the web hosts through its memory. `set` sends the value on the standard input of one
command over the run's SSH connection (its own channel, like the deploy lock's holder): it is never an
argument, never written on this machine, never printed. `list` shows names and short fingerprints (an HMAC of
the value keyed with the site's SECRET_KEY, computed on the host by the observe script), never values.
"""

from __future__ import annotations

import re

from pinned.operations import connection
from pinned.operations.secrets import store_command
from pinned.state.layout import Layout
from pinned.state.model import ENV_VALUE

TIMEOUT = 60


class SecretError(Exception):
    """A secret that could not be stored or removed: one line saying why (never its value)."""


def check_value(value: str) -> str:
    """A value as read (one trailing newline dropped, as `echo` and editors add it): one line of text."""
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise SecretError("the value is empty: nothing stored")
    if not re.fullmatch(ENV_VALUE, value):
        raise SecretError("the value has a newline or another control character (one line of text; base64 a "
                          "multi-line value): nothing stored")
    return value


def store(host, lay: Layout, action: str, name: str, value: str = "") -> None:
    """Set (value on the command's standard input) or unset one secret in `host`'s secrets file."""
    try:
        connection.exchange(host, store_command(lay.secrets, lay.app, action, name),
                            send=value.encode("utf-8") if action == "set" else None, timeout=TIMEOUT)
    except connection.ChannelError as exc:
        raise SecretError(f"{action} {name} failed: {exc}") from None
