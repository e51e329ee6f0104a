"""Commands run on a host outside pyinfra's operations (the deploy lock, the secrets' transfer, the `pinned`
commands), exactly as pyinfra would run an operation's command there: with the host's `_sudo` (and the
like) from its data. Through sudo, pyinfra's own file transfers go through a temporary copy in /tmp
(downloads made readable by every user, uploads written with the login's umask); what must stay private
goes over a channel of its own here instead: bytes to the command's stdin, or from its stdout, never
through a file on the host and never printed.
"""

from __future__ import annotations

import inspect
from typing import IO

import gevent
from pyinfra.api import StringCommand
from pyinfra.api.arguments import pop_global_arguments
from pyinfra.connectors.util import make_unix_command, make_unix_command_for_host

# The arguments that shape a command line (sudo, su, env, …), as pyinfra's connectors pass them.
_UNIX_COMMAND_ARGUMENTS = frozenset(inspect.signature(make_unix_command).parameters) - {"command"}
CHUNK = 65536


class ChannelError(Exception):
    """A command on a channel of its own failed: one line naming the host."""


def host_arguments(host) -> dict:
    """The connector arguments pyinfra gives this host's operations (from its data and the config): `_sudo`…"""
    arguments, _ = pop_global_arguments(host.state, host, {})
    return {k: v for k, v in arguments.items() if k in _UNIX_COMMAND_ARGUMENTS}


def command_line(host, command: StringCommand) -> str:
    """`command` as pyinfra would run it on this host (wrapped in sudo and the like from its data)."""
    return make_unix_command_for_host(host.state, host, command, **host_arguments(host)).get_raw_value()


def run(host, command: StringCommand):
    """`host.run_shell_command(command)` as root when the host's data says `_sudo` (the `pinned` commands)."""
    return host.run_shell_command(command, **host_arguments(host))


def _client(host):
    client = getattr(host.connector, "client", None)
    if client is None or not hasattr(client, "exec_command"):
        raise ChannelError(f"{host.name}: needs an SSH connection (connector {type(host.connector).__name__})")
    return client


def exchange(host, command: StringCommand, send: bytes | None = None, into: IO[bytes] | None = None,
             timeout: float = 120) -> bytes:
    """Run `command` on its own channel (as root through sudo when the host's data says so): `send` goes to
    its stdin, its stdout is written to `into` (streamed) or returned; nothing is logged or printed. Raises
    ChannelError with the command's stderr when it exits non-zero."""
    stdin, stdout, stderr = _client(host).exec_command(command_line(host, command))
    channel = stdout.channel
    out = bytearray()
    try:
        with gevent.Timeout(timeout, ChannelError(f"{host.name}: no answer in {timeout:.0f} s")):
            if send is not None:
                stdin.write(send)
                stdin.flush()
            channel.shutdown_write()
            errors = gevent.spawn(stderr.read)
            while chunk := stdout.read(CHUNK):
                if into is not None:
                    into.write(chunk)
                else:
                    out += chunk
            error = errors.get()
            status = channel.recv_exit_status()
    finally:
        channel.close()
    if status != 0:
        detail = error.decode(errors="replace").strip().splitlines()
        raise ChannelError(f"{host.name}: exit status {status}: {detail[-1] if detail else '(no output)'}")
    return bytes(out)
