"""Facts: what a host has, read in one round trip and parsed by `state.observed` (pure).

A host that could not be observed must never pass for an empty host. pyinfra 3.10 (api/facts.py) turns
several failures into the fact's `default()` without raising: a `requires_command` binary that is
missing (MissingCommandError, caught in `get_fact`), a command that exits non-zero (only logged, and the
host marked failed), a command that prints nothing (`process` is not called). So AppState
- declares no `requires_command` and wraps the script in a shell guard that always exits 0 and prints
  JSON: a missing python3 or a python3 that dies becomes an entry of "errors", like any failed probe;
- parses in `process`, which raises `state.observed.ProbeError` (not a FactProcessError, which pyinfra
  would swallow): it propagates out of `host.get_fact`;
- has `default()` None, never an empty HostObserved: what pyinfra still returns on a failed command
  (connection lost, timeout) cannot be planned on; `observe_host` turns it into a ProbeError.
"""

from __future__ import annotations

import json

from pyinfra.api import FactBase, QuoteString, StringCommand

from pinned.state.observed import HostObserved, ProbeError, parse

from .scripts import script

OBSERVE_SCRIPT = script("observe.py")

# What the shell guard prints instead of the script's JSON ("$?" is python3's exit status).
_PYTHON_MISSING = json.dumps({"errors": [{"probe": "python3", "status": 127,
                                          "detail": "python3 is not installed on the host"}]})
_PYTHON_FAILED = ('{"errors": [{"probe": "observe", "status": \'"$?"\', "detail": '
                  '"python3 exited with status \'"$?"\' running the observe script (killed, or too old?)"}]}')


class AppState(FactBase):
    """Everything pinned needs about one app on a host: packages, users, paths, config files, the
    release tree with its metadata and links, systemd units, MariaDB databases and grants.

    Raises ProbeError (from `host.get_fact`) when any probe failed or the output cannot be read; returns
    None only when pyinfra itself could not run the command (use `observe_host`)."""

    def default(self) -> None:
        return None

    def command(self, request: str) -> StringCommand:
        # `request` is JSON (app, users, packages, paths, files, secrets, history): one argument, quoted.
        return StringCommand(
            "if command -v python3 >/dev/null 2>&1; then",
            "python3", "-c", QuoteString(OBSERVE_SCRIPT), QuoteString(request),
            "|| echo", "'" + _PYTHON_FAILED + "'", ";",
            "else echo", QuoteString(_PYTHON_MISSING), ";",
            "fi",
        )

    def process(self, output: list[str]) -> HostObserved:
        return parse("\n".join(output))


def observe_host(host, request: str) -> HostObserved:
    """`host.get_fact(AppState, request)`, never None: raises ProbeError when the host could not be
    observed (a probe failed, or pyinfra could not run the command at all)."""
    observed = host.get_fact(AppState, request)
    if observed is None:
        raise ProbeError.single("observe", "the observe command did not run (connection, timeout or shell "
                                "error: see pyinfra's output above)")
    return observed


def observe_request(app: str, root: str, unit_prefix: str, db_pattern: str, users: list[str], packages: list[str],
                    paths: list[str], files: list[str], secrets: str, history: str, units: list[str] = (),
                    loaded: str = "", certificates: list[str] = (), keys: list[str] = (),
                    previews: dict | None = None, extra_unit_prefixes: list[str] = (),
                    unit_prefixes: list[str] = ()) -> str:
    """`units`: other units whose state the plan needs (e.g. the scheduled backups' timer); `certificates`,
    `keys`: TLS files read with openssl (what they say; of a key only its public half's digest); `previews`:
    what state/previews.py asks about the previews' files, units and databases; `extra_unit_prefixes`: units
    (and unit files in /etc/systemd/system) named so (processes, schedules); `unit_prefixes`: more units by
    name prefix (the warm releases' timers)."""
    return json.dumps({"extra_unit_prefixes": list(extra_unit_prefixes),
                       "app": app, "root": root, "unit_prefix": unit_prefix, "db_pattern": db_pattern,
                       "users": users, "packages": packages, "paths": paths, "files": files,
                       "secrets": secrets, "history": history, "units": list(units), "loaded": loaded,
                       "certificates": list(certificates), "keys": list(keys),
                       "unit_prefixes": list(unit_prefixes),
                       **({"previews": previews} if previews else {})},
                      sort_keys=True)


class ReleaseFiles(FactBase):
    """A release's files as git names them (path → mode and blob id), as the host has them: its
    `.pinned/files.json`, or computed there for a release built before pinned wrote one
    (operations/remote/release_files.py). The raw text (parsed by state.source.parse_manifest); asked only
    for a web host's served release when the local repository cannot tell what it holds (a shallow clone).
    The script always exits 0 (a failure is `{"error": …}`): a failed fact would mark the host failed."""

    def default(self) -> None:
        return None

    def command(self, release_dir: str) -> StringCommand:
        return StringCommand("python3", "-c", QuoteString(script("release_files.py")), "show",
                             QuoteString(release_dir))

    def process(self, output: list[str]) -> str:
        return "\n".join(output)
