"""Static files: does a release built as hard links of another need its own collectstatic? (Pure: no host.)

collectstatic's output (a release's `assets/`) is a function of what it reads: the virtualenv (Django's and the
packages' static folders, their code), the settings (pinned_settings.py and the project's module), the app's env
and secrets (the settings see them), the folders the staticfiles finders read, and the project's files that
Python imported or opened while it ran. When it runs, operations/remote/collectstatic.py records the last two,
relative to the release, in `.pinned/static_sources.json`, with the key of the rest (`static_key`) that the plan
gave it. A release built from its base can take the base's `assets/` as hard links when the base has such a record,
the key is the same, the secrets are (their fingerprints as collectstatic read them, against those the host will
have) and none of the release's changed or deleted paths is one of those sources (`reuse_assets`); otherwise
collectstatic runs. The secrets are compared from the record, not put in the key: a first deploy's plan does not
know the secrets it generates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from .desired import Desired, HostSpec, runtime_module, settings_module
from .previews import SECRET_PREFIX as PREVIEW_SECRET_PREFIX

RECORD_FORMAT = 1
STATIC_ROOT = "assets"  # collectstatic's output, inside the release (pinned_settings.py's STATIC_ROOT)
PYTHON_SUFFIXES = (".py", ".pyw", ".pyc", ".so", ".pth")


def static_key(d: Desired, host: HostSpec, env: dict[str, str]) -> str:
    """What collectstatic's output depends on beyond the project's files and the secrets, as one digest: the
    virtualenv (requirements hash and pinned's runtime packages), the settings module pinned writes for this host
    with the release's own values left out (its id, schema version and database: collectstatic reads none of
    them), pinned's runtime module, and the fingerprints of the app's env (never its values)."""
    anyone = replace(d, release=replace(d.release, commit="", committed_at=0))
    payload = {
        "format": RECORD_FORMAT,
        "requirements": d.release.requirements_hash,
        "runtime_packages": list(d.release.runtime),
        "project_dir": d.state.django.project_dir,
        "settings": settings_module(anyone, host, 0, ""),
        "runtime": runtime_module(),
        "env": dict(sorted(env.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def overlaps(path: str, folder: str) -> bool:
    """Pure: `path` is `folder`, lies inside it, or is one of its parents (a file or link there replaces it)."""
    a, b = path.strip("/").split("/"), folder.strip("/").split("/")
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def settings_paths(settings: str) -> tuple[str, str]:
    """The project's settings module as a file and as a package (`a.b` → `a/b.py`, `a/b`): either may be it."""
    base = settings.replace(".", "/")
    return base + ".py", base


def app_secrets(fingerprints) -> dict[str, str]:
    """The secrets' fingerprints the app's settings see, less the previews' database passwords (pinned's)."""
    return {k: v for k, v in dict(fingerprints or {}).items() if not k.startswith(PREVIEW_SECRET_PREFIX)}


def reuse_assets(record: dict | None, key: str, secrets: dict[str, str], replaced: tuple[str, ...],
                 added: tuple[str, ...], settings: str) -> tuple[bool, str]:
    """Pure: whether a release built as hard links of a base whose record is `record` can take the base's
    assets/ as they are (True), and why, in a few words for the plan. `replaced`: the release's paths that differ
    from the base's (changed or deleted), `added` those of them the base did not have, relative to the project;
    `key`: this release's static_key; `secrets`: the fingerprints of the secrets the host will have;
    `settings`: the project's settings module."""
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return False, "collectstatic (the base release has no record of its static files' sources)"
    if record.get("outside"):
        return False, f"collectstatic (the base's static files come from outside the release: {record['outside']})"
    if not key or record.get("key") != key:
        return False, "collectstatic (virtualenv, settings or env differ from the base's)"
    if not isinstance(record.get("secrets"), dict) or app_secrets(record["secrets"]) != app_secrets(secrets):
        return False, "collectstatic (the secrets differ from the base's)"
    locations = [p for p in record.get("locations") or () if isinstance(p, str)]
    sources = {p for p in record.get("files") or () if isinstance(p, str)}
    settings_file, settings_package = settings_paths(settings)
    for path in replaced:
        if path == settings_file or overlaps(path, settings_package):
            return False, f"collectstatic (the settings module changed: {path})"
        hit = next((loc for loc in (STATIC_ROOT, *locations) if overlaps(path, loc)), None)
        if hit is not None:
            return False, f"collectstatic (static files changed: {path})"
        if path in sources:
            return False, f"collectstatic (read by collectstatic: {path})"
    new_code = next((p for p in added if p.endswith(PYTHON_SUFFIXES)), None)
    if new_code is not None:
        return False, f"collectstatic (new Python file: {new_code})"
    return True, "static files unchanged"
