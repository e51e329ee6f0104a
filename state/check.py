"""Validate the selected environment's state file, its repository and pin, before any host is contacted."""

from __future__ import annotations

import sys
from pathlib import Path

from .model import StateFileError, load_state, selected_env, state_path
from .source import SourceError, release, repository_path


def check(argv: list[str], environ, base: Path | None = None):
    return check_env(selected_env(argv, environ), base)


def check_env(env: str, base: Path | None = None):
    """(env, state file path, State, Release) of a valid environment; else StateFileError."""
    path = state_path(env, base)
    if not path.exists():
        raise StateFileError(f"{path}: no state file for environment {env!r} (create it, see the README)")
    state = load_state(path)
    try:
        repo = repository_path(state, path)
        rel = release(repo, state.release, state)
    except SourceError as exc:
        raise StateFileError(f"{path}: field 'release'/'repository': {exc}") from None
    return env, path, state, rel


def check_or_exit(argv: list[str], environ) -> None:
    try:
        check(argv, environ)
    except StateFileError as exc:
        print(f"pinned: error: {exc}", file=sys.stderr)
        sys.exit(1)
