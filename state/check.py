"""Validate the selected environment's state file, its repository and pin, before any host is contacted."""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .hosts import HostsError, inventory_groups, jump_config
from .model import State, StateFileError, environments, load_state, selected_env, state_path
from .previews import keep_data_refusal
from .source import Release, SourceError, release, repository_path
from .tls import LocalAcme, LocalTls, check_local


@dataclass(frozen=True)
class Checked:
    """A valid environment: its state file, the state, the local repository and the pinned release."""

    env: str
    path: Path
    state: State
    repo: Path
    release: Release
    tls: LocalTls | None = None  # site.tls's uploaded certificate and key, checked here
    acme: LocalAcme | None = None
    previews: dict = field(default_factory=dict)  # preview name → its Release


# inventory.py validates before pyinfra connects, and deploy.py / `pinned` need the same result in the
# same process: the git work is done once per state file as it is on disk.
_checked: dict[tuple, Checked] = {}


def check(argv: list[str], environ, base: Path | None = None) -> Checked:
    return check_env(selected_env(argv, environ), base)


def check_env(env: str, base: Path | None = None) -> Checked:
    """The valid environment `env`; else StateFileError naming the file and the field."""
    path = state_path(env, base)
    if not path.exists():
        others = [e for e in environments(base) if e != env]
        hint = (f"environments here: {', '.join(others)} (--env NAME)" if others else
                "`pinned init` writes one; or run from the folder that holds it, or set PINNED_STATE_DIR")
        raise StateFileError(f"{path}: no state file for environment {env!r}; {hint}")
    stat = path.stat()
    key = (env, str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _checked:
        state = load_state(path)
        tls, acme = check_local(state, path.parent, str(path))  # the certificate files, before any host
        try:
            repo = repository_path(state, path)
            rel = release(repo, state.release, state)
        except SourceError as exc:
            raise StateFileError(f"{path}: field 'release'/'repository': {exc}") from None
        previews = {}
        for name, preview in state.previews.items():
            try:
                previews[name] = release(repo, preview.release, state)
            except SourceError as exc:
                raise StateFileError(f"{path}: field 'previews.{name}.release': {exc}") from None
        refused = keep_data_refusal(state, rel, previews)
        if refused:
            raise StateFileError(f"{path}: {refused}")
        _checked[key] = Checked(env, path, state, repo, rel, tls, acme, previews)
    return _checked[key]


def check_or_exit(argv: list[str], environ) -> Checked:
    try:
        return check(argv, environ)
    except StateFileError as exc:
        print(f"pinned: error: {exc}", file=sys.stderr)
        sys.exit(1)


def _private_file(text: str) -> str:
    """A file only this user can read, removed when this process ends (pyinfra reads it at connect)."""
    fd, path = tempfile.mkstemp(prefix="pinned-ssh-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return path


def host_groups(checked: Checked) -> dict[str, list[tuple[str, dict]]]:
    """pyinfra's `web` and `db` groups for the environment (HostsError / StateFileError when unusable)."""
    hosts, where = checked.state.hosts, checked.path
    if hosts is None:
        raise StateFileError(f"{where}: field 'hosts' is required to deploy: name the servers "
                             "(hosts: {web: [www1.example.com], db: db1.example.com}) or `hosts: sandbox`")
    if hosts == "sandbox":
        from ..sandbox.core import SandboxError
        from ..sandbox.core import inventory_groups as sandbox_groups
        try:
            return sandbox_groups()
        except SandboxError as exc:
            raise StateFileError(f"{where}: hosts: sandbox: {exc}") from None
    user_config = Path(os.path.expanduser("~/.ssh/config"))
    jump = jump_config(hosts, checked.state.ssh, where.parent,
                       user_config.read_text() if user_config.is_file() else "")
    try:
        return inventory_groups(hosts, checked.state.ssh, where.parent, _private_file(jump) if jump else None)
    except HostsError as exc:
        raise StateFileError(f"{where}: {exc}") from None


def hosts_or_exit(checked: Checked) -> dict[str, list[tuple[str, dict]]]:
    try:
        return host_groups(checked)
    except StateFileError as exc:
        print(f"pinned: error: {exc}", file=sys.stderr)
        sys.exit(1)
