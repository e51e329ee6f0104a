"""Facts: what a host has, read in one round trip and parsed by `state.observed` (pure)."""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra.api import FactBase, QuoteString, StringCommand

from state.observed import HostObserved, parse

OBSERVE_SCRIPT = (Path(__file__).parent / "remote" / "observe.py").read_text()


class AppState(FactBase):
    """Everything pinned needs about one app on a host: packages, users, paths, config files, the
    release tree with its metadata and links, systemd units, MariaDB databases and grants."""

    def requires_command(self, *args, **kwargs) -> str:
        return "python3"

    def default(self) -> HostObserved:
        return HostObserved()

    def command(self, request: str) -> StringCommand:
        # `request` is JSON (app, users, packages, paths, files, secrets, history): one argument, quoted.
        return StringCommand("python3", "-c", QuoteString(OBSERVE_SCRIPT), QuoteString(request))

    def process(self, output: list[str]) -> HostObserved:
        return parse("\n".join(output))


def observe_request(app: str, users: list[str], packages: list[str], paths: list[str], files: list[str],
                    secrets: str, history: str) -> str:
    return json.dumps({"app": app, "users": users, "packages": packages, "paths": paths, "files": files,
                       "secrets": secrets, "history": history}, sort_keys=True)
