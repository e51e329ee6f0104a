"""Validate the selected environment's state file, its repository and pin, before any host is contacted."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .model import State, StateFileError, load_state, selected_env, state_path
from .source import Release, SourceError, release, repository_path


@dataclass(frozen=True)
class Checked:
    """A valid environment: its state file, the state, the local repository and the pinned release."""

    env: str
    path: Path
    state: State
    repo: Path
    release: Release


# inventory.py validates before pyinfra connects, and deploy.py / `pinned` need the same result in the
# same process: the git work is done once per state file as it is on disk.
_checked: dict[tuple, Checked] = {}


def check(argv: list[str], environ, base: Path | None = None) -> Checked:
    return check_env(selected_env(argv, environ), base)


def check_env(env: str, base: Path | None = None) -> Checked:
    """The valid environment `env`; else StateFileError naming the file and the field."""
    path = state_path(env, base)
    if not path.exists():
        raise StateFileError(f"{path}: no state file for environment {env!r} (create it, see the README)")
    stat = path.stat()
    key = (env, str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _checked:
        state = load_state(path)
        try:
            repo = repository_path(state, path)
            rel = release(repo, state.release, state)
        except SourceError as exc:
            raise StateFileError(f"{path}: field 'release'/'repository': {exc}") from None
        _checked[key] = Checked(env, path, state, repo, rel)
    return _checked[key]


def check_or_exit(argv: list[str], environ) -> None:
    try:
        check(argv, environ)
    except StateFileError as exc:
        print(f"pinned: error: {exc}", file=sys.stderr)
        sys.exit(1)
