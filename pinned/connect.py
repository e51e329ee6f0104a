"""A host pyinfra cannot connect to: one line naming it, how it was reached and why not, instead of
pyinfra's cascade (its `[host] Authentication error …` line, host-key warnings, then `pyinfra error: No
hosts remaining!` or `Over 0% of hosts failed (50%)`, or a traceback from the API).

`watch(groups)` (called by inventory.py, so in `pyinfra inventory.py deploy.py` and in every `pinned`
command) puts a filter on pyinfra's logger, before pyinfra connects: pyinfra's own line about a host it
could not connect to (`[host] <reason>`, logged by Host.connect) is replaced by pinned's (`pinned: error:
<host>: cannot connect over SSH (<login>@<address> port N through <jump host>): <reason>; nothing was
changed on any host`), printed at once (before pyinfra's question "continue?" when run without -y), and
pyinfra's summary error that follows (`No hosts remaining!`, `Over 0% of hosts failed`) is dropped. A
connection fails before the deploy lock, the observe fact or any operation: no host of the environment
has been changed when this is printed. (pyinfra's state callbacks cannot be used: its state is
initialised only after the inventory is loaded.)
"""

from __future__ import annotations

import logging
import os
import re
import sys

_HOST_MODULE = os.path.join("pyinfra", "api", "host.py")
_HOST_KEY_MISSING = "No host key for %s found in known_hosts"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HOST_LINE = re.compile(r"^\[(?P<name>[^\]]+)\] (?P<reason>.*)$", re.S)


def describe(name: str, data: dict, reason: str) -> str:
    """One line: the host, how it was reached (login, address, port, jump host) and pyinfra's reason."""
    user = data.get("ssh_user")
    target = f"{user + '@' if user else ''}{data.get('ssh_hostname') or name}"
    port = data.get("ssh_port")
    jump = data.get("proxy_jump")
    how = target + (f" port {port}" if port else "") + (f" through {jump}" if jump else "")
    return f"{name}: cannot connect over SSH ({how}): {' '.join(reason.split())}"


class ConnectErrors(logging.Filter):
    """The connection errors of this process, one line per host."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, dict] = {}
        self.failed: dict[str, str] = {}

    def lines(self) -> list[str]:
        return [f"{line}; nothing was changed on any host" for line in self.failed.values()]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.funcName == "connect" and record.pathname.endswith(_HOST_MODULE):
            found = _HOST_LINE.match(_ANSI.sub("", record.getMessage()).strip())
            if found and found["name"] in self.data:
                line = describe(found["name"], self.data[found["name"]], found["reason"])
                self.failed[found["name"]] = line
                print(f"pinned: error: {line}; nothing was changed on any host", file=sys.stderr, flush=True)
                return False  # said in our line
            return True
        if record.msg == _HOST_KEY_MISSING:
            return False  # checking off: noise; checking on: the connection error says it
        message = record.msg if isinstance(record.msg, str) else ""
        if self.failed and "pyinfra error" in message and ("No hosts remaining" in message
                                                          or "of hosts failed" in message):
            return False  # its summary of the connection errors: said above, one line per host
        return True


ERRORS = ConnectErrors()


def watch(groups: dict[str, list[tuple[str, dict]]]) -> ConnectErrors:
    """Record the connection errors of these hosts (once per process; the hosts' data says how each is
    reached)."""
    for members in groups.values():
        ERRORS.data.update(dict(members))
    logger = logging.getLogger("pyinfra")
    if ERRORS not in logger.filters:
        logger.addFilter(ERRORS)
    return ERRORS
