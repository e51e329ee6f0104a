"""The app's secrets on the db host (the commands `pinned secret set`, `list`, `unset`).

Values live only in the db host's secrets file (state.layout.Layout.secrets, root:<app> 0640), from where a
deploy carries them to the web hosts through its memory. `set` sends the value on the standard input of one
command over the run's SSH connection (its own channel, like the deploy lock's holder): it is never an
argument, never written on this machine, never printed. `list` shows names and short fingerprints (an HMAC of
the value keyed with the site's SECRET_KEY, computed on the host by the observe script), never values.
"""

from __future__ import annotations

import re

import gevent
from pyinfra.api import StringCommand
from pyinfra.api.arguments import pop_global_arguments
from pyinfra.connectors.util import make_unix_command_for_host

from pinned.lock import _UNIX_COMMAND_ARGUMENTS
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


def _command_line(host, command: StringCommand) -> str:
    """The command as pyinfra would run it on this host (sudo and the like from its data)."""
    arguments, _ = pop_global_arguments(host.state, host, {})
    connector = {k: v for k, v in arguments.items() if k in _UNIX_COMMAND_ARGUMENTS}
    return make_unix_command_for_host(host.state, host, command, **connector).get_raw_value()


def store(host, lay: Layout, action: str, name: str, value: str = "") -> None:
    """Set (value on the command's standard input) or unset one secret in `host`'s secrets file."""
    client = getattr(host.connector, "client", None)
    if client is None or not hasattr(client, "exec_command"):
        raise SecretError(f"{host.name}: storing a secret needs an SSH connection")
    command = _command_line(host, store_command(lay.secrets, lay.app, action, name))
    with gevent.Timeout(TIMEOUT, SecretError(f"{host.name}: storing {name} did not finish in {TIMEOUT} s")):
        stdin, stdout, stderr = client.exec_command(command)
        if action == "set":
            stdin.write(value.encode("utf-8"))
        stdin.channel.shutdown_write()
        status = stdout.channel.recv_exit_status()
        said = stderr.read().decode("utf-8", "replace").strip().splitlines()
    if status != 0:
        raise SecretError(f"{host.name}: {action} {name} failed: {said[-1] if said else f'exit status {status}'}")
