"""A host pyinfra cannot connect to, without a host: pinned's filter on pyinfra's logger turns pyinfra's own
records (as pyinfra 3's Host.connect and its CLI log them) into one line per host, and drops the rest of
the cascade. tests/test_own_servers.py does it with real hosts."""

from __future__ import annotations

import logging
import os

import pyinfra.api.host
import pytest
from pyinfra.api.util import format_text

from pinned.connect import ConnectErrors


def record(message: str, level: int = logging.ERROR, path: str | None = None, func: str = "connect",
           args=None) -> logging.LogRecord:
    """A record as pyinfra's `logger.error(...)` in Host.connect makes it (its file and function)."""
    return logging.LogRecord("pyinfra", level, path or pyinfra.api.host.__file__, 394, message, args, None,
                             func=func)


@pytest.fixture
def errors():
    e = ConnectErrors()
    e.data.update({"www1": {"ssh_user": "deploy", "ssh_port": 2222, "proxy_jump": "bastion"},
                   "10.0.0.9": {"ssh_user": "root"}})
    return e


def test_a_connection_error_becomes_one_line_naming_the_host_and_how(errors, capsys):
    why = "Authentication error (username=deploy, key=/k) (Authentication failed.)"
    assert errors.filter(record(f"[{format_text('www1', 'bold')}] {format_text(why, 'red')}")) is False
    assert errors.filter(record("[10.0.0.9] Could not connect ([Errno None] Unable to connect to port 22)")) is False
    assert errors.filter(record("No host key for %s found in known_hosts", logging.WARNING, func="x",
                                args=("10.0.0.9",))) is False
    assert errors.failed == {
        "www1": f"www1: cannot connect over SSH (deploy@www1 port 2222 through bastion): {why}",
        "10.0.0.9": "10.0.0.9: cannot connect over SSH (root@10.0.0.9): Could not connect ([Errno None] Unable "
                    "to connect to port 22)"}
    # Printed at once (pyinfra run without -y asks "continue?" next), one line each.
    assert capsys.readouterr().err.splitlines() == [f"pinned: error: {line}" for line in errors.lines()]
    assert all(line.endswith("; nothing was changed on any host") for line in errors.lines())
    # pyinfra's summary that follows is dropped: it would only repeat them.
    assert errors.filter(record("--> \x1b[31mpyinfra error\x1b[0m: No hosts remaining!", logging.WARNING,
                                path=os.path.join("x", "pyinfra_cli", "exceptions.py"), func="show")) is False
    assert errors.filter(record("--> pyinfra error: Over 0% of hosts failed (50%)", logging.WARNING,
                                func="show")) is False
    assert capsys.readouterr().err == ""


def test_other_records_pass(errors):
    assert errors.filter(record("[www1] Connected", logging.INFO)) is True
    assert errors.filter(record("[other] Could not connect (…)")) is True  # not a host of the environment
    assert errors.filter(record("--> pyinfra error: No hosts remaining!", logging.WARNING, func="show")) is True
    assert errors.failed == {}
