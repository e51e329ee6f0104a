"""Observed state: what one host really has, parsed from the observe fact into plain data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .source import RELEASE_ID_RE


@dataclass(frozen=True)
class ReleaseOnDisk:
    id: str
    schema: int
    status: str  # ready, failed, unknown (no metadata)
    commit: str = ""
    requirements_hash: str = ""
    built_at: str = ""
    files: str = ""  # digest of its files' manifest (.pinned/files.json), recorded when it was built


@dataclass(frozen=True)
class SchemaOnDisk:
    number: int
    fingerprint: str | None  # None: schema.json missing (never finished)
    database: str | None
    migrated: bool
    copied_from: int | None
    last: str | None  # release id the `last` link names
    migrations: tuple[str, ...] = ()  # the migration files the database has (paths in the repository)
    served: bool = False  # a release of it has been current (its database may hold writes: never recopied)


@dataclass(frozen=True)
class FileOnHost:
    content: str
    mode: str
    owner: str
    group: str


@dataclass(frozen=True)
class HostObserved:
    """Everything about one app on one host. A host with nothing yet has the empty value (built directly:
    `parse` never returns it for output it cannot read)."""

    reachable_python: bool = False
    python: str = ""  # the host's python3 (e.g. 3.11.2), which makes the release's virtualenv; "" unknown
    packages: frozenset[str] = frozenset()
    users: dict = field(default_factory=dict)  # name -> {home, shell, group, groups, authorized_keys}
    paths: dict = field(default_factory=dict)  # path -> {type, mode, owner, group[, target]} or None
    files: dict = field(default_factory=dict)  # path -> FileOnHost or None
    secrets: dict | None = None  # {mode, owner, group, keys} — never the values
    current: str | None = None  # release id `current` names (None: missing or not a release)
    current_target: str | None = None  # the raw link target
    schemas: dict = field(default_factory=dict)  # number -> SchemaOnDisk
    releases: dict = field(default_factory=dict)  # id -> ReleaseOnDisk
    by_id: dict = field(default_factory=dict)  # id -> link target
    venvs: frozenset[str] = frozenset()
    building: tuple[str, ...] = ()  # leftover build folders (a deploy that did not finish)
    units: dict = field(default_factory=dict)  # unit -> {active, enabled}
    unit_files: frozenset[str] = frozenset()  # the app's process and schedule unit files in /etc/systemd/system
    mysql_running: bool = False
    databases: frozenset[str] = frozenset()
    db_users: dict = field(default_factory=dict)  # "user@host" -> [grant lines]
    history: tuple[str, ...] = ()
    db_stats: dict = field(default_factory=dict)  # database -> (tables, estimated rows, bytes)
    current_static: dict | None = None  # the current release's .pinned/static_sources.json (state/static.py)
    loaded: dict | None = None  # what the running release was (re)started with: {env, secrets} fingerprints
    now: int = 0  # the host's clock (seconds since the epoch) when observed
    certificates: dict = field(default_factory=dict)  # path -> {subject, issuer, names, not_after, expires,
    #                                                   serial} | {invalid} | None (missing)
    tls_keys: dict = field(default_factory=dict)  # path -> {mode, owner, group, public_key (SHA-256)} | None
    # The app's previews here (state/previews.py): {files: {path: FileOnHost}, units, databases, users}
    previews: dict = field(default_factory=dict)
    timers: dict = field(default_factory=dict)  # active warm timer -> when it elapses (for display)

    @property
    def current_release(self) -> ReleaseOnDisk | None:
        """The release `current` names, if it is one on disk."""
        return self.releases.get(self.current) if self.current else None

    @property
    def secrets_digest(self) -> str | None:
        return (self.secrets or {}).get("digest")

    @property
    def secret_fingerprints(self) -> dict[str, str]:
        """Each secret's name → a short keyed fingerprint of its value (never the value)."""
        return dict((self.secrets or {}).get("fingerprints") or {})

    def unit_active(self, name: str) -> bool:
        return self.units.get(name, {}).get("active") == "active"

    def unit_enabled(self, name: str) -> bool:
        return bool(self.units.get(name, {}).get("enabled"))


def _release_from_target(target: str | None) -> str | None:
    """`versions/3/<id>` (relative or absolute) → `<id>`."""
    if not target:
        return None
    parts = target.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] == "versions" and parts[-2].isdigit() and RELEASE_ID_RE.fullmatch(parts[-1]):
        return parts[-1]
    return None


class ProbeError(Exception):
    """The host could not be observed: one or more probes failed. `errors` holds each failure as
    {probe, status, detail}; a host that was not observed never passes for an empty one."""

    def __init__(self, errors: list[dict]):
        errors = [e if isinstance(e, dict) else {"detail": e} for e in errors]
        self.errors = [{"probe": str(e.get("probe") or "observe"), "status": e.get("status"),
                        "detail": str(e.get("detail") or "")} for e in errors] or [
            {"probe": "observe", "status": None, "detail": "failed"}]
        super().__init__("; ".join(f"probe {e['probe']} failed: {_one_line(e['detail'])}" for e in self.errors))

    @classmethod
    def single(cls, probe: str, detail: str, status: int | None = None) -> ProbeError:
        return cls([{"probe": probe, "status": status, "detail": detail}])

    @property
    def probes(self) -> tuple[str, ...]:
        """The failed probes' names, in order, each once."""
        return tuple(dict.fromkeys(e["probe"] for e in self.errors))

    @property
    def detail(self) -> str:
        return "; ".join(_one_line(e["detail"]) for e in self.errors)


def _one_line(text: str) -> str:
    return " / ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _excerpt(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def describe_probe_error(host_name: str, exc: ProbeError) -> str:
    """The one line the engine prints for a host it could not observe:
    `pinned: error: <host>: probe <probe> failed: <detail>` (each failed probe, `; `-separated)."""
    return f"pinned: error: {host_name}: {exc}"


def _load(output: str) -> dict:
    """The observe script's JSON document, or ProbeError: nothing printed, not JSON, or errors reported."""
    output = output.strip()
    if not output:
        raise ProbeError.single("observe", "the observe script printed nothing")
    try:
        data = json.loads(output)
    except ValueError:
        # The script died after printing part of its document and the shell wrapper added its own
        # error line: report that line's errors; anything else is named, truncated.
        try:
            data = json.loads(output.splitlines()[-1])
        except ValueError:
            data = None
        if not (isinstance(data, dict) and data.get("errors")):
            raise ProbeError.single("observe", f"output is not JSON: {_excerpt(output)}") from None
    if not isinstance(data, dict):
        raise ProbeError.single("observe", f"output is not a JSON object: {_excerpt(output)}")
    if data.get("errors"):
        raise ProbeError(list(data["errors"]))
    if not data.get("python"):
        raise ProbeError.single("observe", f"output names no python version: {_excerpt(output)}")
    return data


def parse(output: str) -> HostObserved:
    """Parse the observe script's JSON (pure: no host involved). Strict: output that is empty, not JSON
    or reports probe errors raises ProbeError (an unobserved host must never plan as an empty one)."""
    data = _load(output)
    tree = data.get("tree") or {}
    schemas: dict[int, SchemaOnDisk] = {}
    releases: dict[str, ReleaseOnDisk] = {}
    for number_text, schema in (tree.get("schemas") or {}).items():
        number = int(number_text)
        info = schema.get("info") or {}
        last = schema.get("last")
        schemas[number] = SchemaOnDisk(
            number=number,
            fingerprint=info.get("fingerprint"),
            database=info.get("database"),
            migrated=bool(info.get("migrated")),
            copied_from=info.get("copied_from"),
            last=last.rstrip("/").split("/")[-1] if last else None,
            migrations=tuple(info.get("migrations") or ()),
            served=bool(schema.get("served")),
        )
        for release_id, meta in (schema.get("releases") or {}).items():
            if not RELEASE_ID_RE.fullmatch(release_id):
                continue
            releases[release_id] = ReleaseOnDisk(
                id=release_id, schema=number, status=meta.get("status", "unknown"),
                commit=meta.get("commit", ""), requirements_hash=meta.get("requirements_hash", ""),
                built_at=meta.get("built_at", ""), files=meta.get("files", ""),
            )
    files = {
        path: (FileOnHost(content=f["content"], mode=f["mode"], owner=f["owner"], group=f["group"]) if f else None)
        for path, f in (data.get("files") or {}).items()
    }
    mysql = data.get("mysql") or {}
    return HostObserved(
        reachable_python=True,
        python=str(data.get("python_version") or data.get("python") or ""),
        packages=frozenset(data.get("packages") or ()),
        users=data.get("users") or {},
        paths=data.get("paths") or {},
        files=files,
        secrets=data.get("secrets"),
        current=_release_from_target(tree.get("current")),
        current_target=tree.get("current"),
        current_static=tree.get("current_static") if isinstance(tree.get("current_static"), dict) else None,
        schemas=schemas,
        releases=releases,
        by_id=tree.get("by_id") or {},
        venvs=frozenset(tree.get("venvs") or ()),
        building=tuple(tree.get("building") or ()),
        units=data.get("units") or {},
        unit_files=frozenset(data.get("unit_files") or ()),
        mysql_running=bool(mysql.get("running")),
        databases=frozenset(mysql.get("databases") or ()),
        db_users=mysql.get("users") or {},
        history=tuple(data.get("history") or ()),
        db_stats={k: tuple(v) for k, v in (mysql.get("stats") or {}).items()},
        loaded=data.get("loaded") if isinstance(data.get("loaded"), dict) else None,
        now=int(data.get("now") or 0),
        certificates=data.get("certificates") or {},
        tls_keys=data.get("keys") or {},
        previews=_previews(data.get("previews") or {}),
        timers=dict(data.get("timers") or {}),
    )


def _previews(data: dict) -> dict:
    files = {path: (FileOnHost(content=f["content"], mode=f["mode"], owner=f["owner"], group=f["group"]) if f
                    else None) for path, f in (data.get("files") or {}).items()}
    return {"files": files, "units": data.get("units") or {}, "databases": frozenset(data.get("databases") or ()),
            "users": data.get("users") or {}}
