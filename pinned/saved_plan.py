"""Saved plans: `pinned plan --out FILE` then `pinned apply FILE` runs exactly what was reviewed, or nothing.

A saved plan holds the plan (its JSON, as `pinned plan --json` prints it) and what it was computed from:
the state file's content hash, the pinned commit, the hosts, and per host a digest of each observed fact the
plan is computed from. Applying observes again (under the deploy lock) and plans again; any difference in
those inputs — or in the steps — refuses the whole run before any operation, naming the host and what moved.
Nothing in it is a secret: the plan JSON never holds a value, and the observed facts are digests (the secrets
file is observed as a digest and fingerprints already, and hashed again here).

Left out of the digests on purpose: the databases' sizes and row estimates (`db_stats`): a site that takes
writes between plan and apply changes them, and they only ever change the numbers a step's reason shows
(copy estimates), never which steps run; and the host's clock (`now`), which always moves: where time decides a
step (a certificate renewed under 14 days left), the steps differ and that refuses the plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

from pinned.state.model import data_value
from pinned.state.observed import HostObserved

FORMAT = "pinned-saved-plan"
VERSION = 1
IGNORED = {"db_stats", "now"}  # see the module docstring
# Observed facts kept per key (a changed file or path is named), the others as one value each.
PER_KEY = {"paths": "path", "files": "file", "units": "unit", "releases": "release", "schemas": "schema version",
           "by_id": "by-id link", "users": "user", "db_users": "database account"}
LABELS = {"current": "the `current` link", "current_target": "the `current` link", "packages": "installed packages",
          "secrets": "the secrets file (its digest: never a value)", "history": "the switch history",
          "databases": "the databases", "venvs": "the virtualenvs", "building": "unfinished builds",
          "loaded": "what the running release was started with", "mysql_running": "MariaDB running",
          "python": "python3", "reachable_python": "python3"}


class SavedPlanError(Exception):
    pass


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot digest {type(value).__name__}")


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def observed_digests(observed: HostObserved) -> dict[str, str]:
    """Each observed fact the plan depends on → a digest ("file /etc/…" per file, "packages" whole)."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(observed):
        if f.name in IGNORED:
            continue
        value = getattr(observed, f.name)
        if f.name in PER_KEY and isinstance(value, dict):
            for key, item in value.items():
                out[f"{f.name}\t{key}"] = _digest(item)
        else:
            out[f.name] = _digest(value)
    return out


def _label(key: str) -> str:
    name, _, item = key.partition("\t")
    if item:
        return f"{PER_KEY[name]} {item}"
    return LABELS.get(name, name.replace("_", " "))


def host_changes(saved: dict[str, str], now: dict[str, str]) -> list[str]:
    """What moved on one host, one phrase per fact (e.g. `file /etc/nginx/… changed`)."""
    found: dict[str, None] = {}
    for key in sorted(saved.keys() | now.keys()):
        if key not in now:
            found[f"{_label(key)} is gone"] = None
        elif key not in saved:
            found[f"{_label(key)} appeared"] = None
        elif saved[key] != now[key]:
            found[f"{_label(key)} changed"] = None
    return list(found)


def step_keys(plan_json: dict) -> list[list[str]]:
    """What identifies the steps (the reasons may carry size estimates, which are not compared)."""
    return [[s["host"], s["phase"], s["action"], s["kind"], s["target"]] for s in plan_json["steps"]]


def state_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make(run, plan_json: dict, hosts: list[str], made_by: str) -> dict:
    """The saved plan of a computed run (engine.Run) for these hosts."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "env": run.checked.env,
        "state_file": run.display_path,
        "state_sha256": state_digest(run.checked.path),
        "release": {"commit": run.checked.release.commit, "id": run.checked.release.id},
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "made_by": made_by,
        "hosts": {name: observed_digests(run.observed[name]) for name in sorted(hosts)},
        "plan": plan_json,
    }


def write(path: str, document: dict) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    tmp.replace(target)


def load(path: str) -> dict:
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SavedPlanError(f"{path}: no such file (make one with `pinned plan --out {path}`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SavedPlanError(f"{path}: not a saved plan ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SavedPlanError(f"{path}: not a saved plan (made by `pinned plan --out FILE`)")
    if document.get("version") != VERSION:
        raise SavedPlanError(f"{path}: a saved plan of format version {document.get('version')!r}; this pinned "
                             f"reads version {VERSION}: make it again with `pinned plan --out {path}`")
    for key in ("env", "state_sha256", "release", "hosts", "plan"):
        if key not in document:
            raise SavedPlanError(f"{path}: not a saved plan (no {key!r})")
    return document


def differences(saved: dict, run, plan_json: dict, hosts: list[str]) -> list[str]:
    """Why the saved plan no longer applies (empty: it does, exactly)."""
    problems = []
    if saved["env"] != run.checked.env:
        return [f"it is a plan of environment {saved['env']!r}, not {run.checked.env!r}"]
    if saved["state_sha256"] != state_digest(run.checked.path):
        problems.append(f"{run.display_path} changed since the plan was made")
    if saved["release"].get("commit") != run.checked.release.commit:
        problems.append(f"the pinned release is {run.checked.release.commit[:12]} now, "
                        f"{str(saved['release'].get('commit'))[:12]} in the plan")
    if sorted(saved["hosts"]) != sorted(hosts):
        problems.append(f"the plan is for hosts {', '.join(sorted(saved['hosts']))}; this run has "
                        f"{', '.join(sorted(hosts))}")
    for name in sorted(set(saved["hosts"]) & set(hosts)):
        moved = host_changes(saved["hosts"][name], observed_digests(run.observed[name]))
        if moved:
            problems.append(f"{name}: " + "; ".join(moved))
    if not problems and step_keys(saved["plan"]) != step_keys(plan_json):
        problems.append("the steps computed now differ from the saved ones")
    return problems


def saved_plan_path(argv: list[str]) -> str | None:
    """`--data plan=FILE` on pyinfra's command line (`pinned apply FILE` passes it)."""
    return data_value(argv, "plan")
