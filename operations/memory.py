"""Bytes on their way from one host to others, kept in the deploying process's memory only (never on its
disk, never printed): the db host's secrets, read by one operation and written by others in the same run.
A change names its buffer by key (state.layout.Layout.secrets_memory_key).

They travel over channels of their own (operations/connection.py), as root through sudo when the host's
data says so: read from a command's stdout, written to a command's stdin — never through a temporary file
on a host (pyinfra's file transfers through sudo copy to /tmp), never on a command line (sudo logs those)."""

from __future__ import annotations

from io import BytesIO

from pyinfra import logger
from pyinfra.api import FunctionCommand, StringCommand

from .connection import ChannelError, exchange

_buffers: dict[str, BytesIO] = {}


def buffer(key: str) -> BytesIO:
    """The buffer for `key`, made empty on first use."""
    return _buffers.setdefault(key, BytesIO())


def forget(key: str) -> None:
    _buffers.pop(key, None)


def _read(state, host, command: StringCommand, key: str) -> bool:
    try:
        data = exchange(host, command)
    except ChannelError as exc:
        logger.error(f"{host.print_prefix}reading into memory failed: {exc}")
        return False
    if not data:
        logger.error(f"{host.print_prefix}reading into memory failed: {host.name}: nothing was read")
        return False
    buffer(key).seek(0)
    buffer(key).truncate()
    buffer(key).write(data)
    return True


def _write(state, host, command: StringCommand, key: str) -> bool:
    data = buffer(key).getvalue()
    if not data:
        logger.error(f"{host.print_prefix}nothing in memory to write (key {key}): was it read first?")
        return False
    try:
        exchange(host, command, send=data)
    except ChannelError as exc:
        logger.error(f"{host.print_prefix}writing from memory failed: {exc}")
        return False
    return True


def read_into(key: str, command: StringCommand) -> FunctionCommand:
    """A command of an operation: `command`'s stdout (on its own channel) into the buffer `key`."""
    return FunctionCommand(_read, (command, key), {})


def write_from(key: str, command: StringCommand) -> FunctionCommand:
    """A command of an operation: the buffer `key` to `command`'s stdin (on its own channel)."""
    return FunctionCommand(_write, (command, key), {})
