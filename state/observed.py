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
    """Everything about one app on one host. A host with nothing yet parses to the empty value."""

    reachable_python: bool = False
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
    mysql_running: bool = False
    databases: frozenset[str] = frozenset()
    db_users: dict = field(default_factory=dict)  # "user@host" -> [grant lines]
    history: tuple[str, ...] = ()
    db_stats: dict = field(default_factory=dict)  # database -> (tables, estimated rows, bytes)

    @property
    def current_release(self) -> ReleaseOnDisk | None:
        """The release `current` names, if it is one on disk."""
        return self.releases.get(self.current) if self.current else None

    @property
    def secrets_digest(self) -> str | None:
        return (self.secrets or {}).get("digest")

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


def parse(output: str) -> HostObserved:
    """Parse the observe script's JSON (pure: no host involved)."""
    output = output.strip()
    if not output:
        return HostObserved()
    data = json.loads(output)
    if not data.get("python"):
        return HostObserved()
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
                built_at=meta.get("built_at", ""),
            )
    files = {
        path: (FileOnHost(content=f["content"], mode=f["mode"], owner=f["owner"], group=f["group"]) if f else None)
        for path, f in (data.get("files") or {}).items()
    }
    mysql = data.get("mysql") or {}
    return HostObserved(
        reachable_python=True,
        packages=frozenset(data.get("packages") or ()),
        users=data.get("users") or {},
        paths=data.get("paths") or {},
        files=files,
        secrets=data.get("secrets"),
        current=_release_from_target(tree.get("current")),
        current_target=tree.get("current"),
        schemas=schemas,
        releases=releases,
        by_id=tree.get("by_id") or {},
        venvs=frozenset(tree.get("venvs") or ()),
        building=tuple(tree.get("building") or ()),
        units=data.get("units") or {},
        mysql_running=bool(mysql.get("running")),
        databases=frozenset(mysql.get("databases") or ()),
        db_users=mysql.get("users") or {},
        history=tuple(data.get("history") or ()),
        db_stats={k: tuple(v) for k, v in (mysql.get("stats") or {}).items()},
    )
