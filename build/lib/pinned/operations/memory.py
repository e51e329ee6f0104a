"""Bytes on their way from one host to others, kept in the deploying process's memory only (never on its
disk, never printed): the db host's secrets, read by one operation and written by others in the same run.
A change names its buffer by key (state.layout.Layout.secrets_memory_key)."""

from __future__ import annotations

from io import BytesIO

_buffers: dict[str, BytesIO] = {}


def buffer(key: str) -> BytesIO:
    """The buffer for `key`, made empty on first use."""
    return _buffers.setdefault(key, BytesIO())


def forget(key: str) -> None:
    _buffers.pop(key, None)
