"""The changes a plan is made of: one frozen dataclass per kind of step, carrying every argument its
operation needs (deploy.py calls the operation with exactly these fields, nothing added later).

A `Step` (state/plan.py) holds one change plus what the plan says about it (host, action, reason, phase).
Adding a kind of step: a dataclass here, a planner that emits it, an operation of the same field names
(deploy.py's table maps the type to it), the simulator's rule (tests/simulate.py) and a test.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar


@dataclass(frozen=True)
class Change:
    kind: ClassVar[str]
    about: ClassVar[str]  # one line for the README's table of step kinds

    def arguments(self) -> dict:
        """The operation's keyword arguments: this change's fields, shallow (no copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Packages(Change):
    kind = "packages"
    about = "install missing Debian packages"
    packages: tuple[str, ...]
    update: bool = True  # apt-get update first (not again for the second install of a run)
    job: str = ""  # started in the background by a packages-start step earlier in the run: only waited for here
    undo: str = ""  # that install's deploy lock undo hook, removed once it ended


@dataclass(frozen=True)
class PackagesStart(Change):
    kind = "packages-start"
    about = ("start installing Debian packages in the background (a bare host's nginx and MariaDB), after the "
             "virtualenv's build started, while the steps that do not need them run; its `packages` step waits")
    packages: tuple[str, ...]
    job: str  # the install's folder on the host: its pid, apt's output, its exit status
    undo: str  # the deploy lock's undo hook: holds the lock until the install ended if the run ends first


@dataclass(frozen=True)
class Service(Change):
    kind = "service"
    about = "start/enable a system service (nginx, MariaDB)"
    unit: str


@dataclass(frozen=True)
class User(Change):
    kind = "user"
    about = "the app's system user and group, or an extra user with its SSH keys"
    login: str
    system: bool
    home: str = ""
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory(Change):
    kind = "directory"
    about = "a folder of the app root, with owner and mode"
    path: str
    owner: str = "root"
    group: str = "root"
    mode: str = "0755"


@dataclass(frozen=True)
class Secrets(Change):
    kind = "secrets"
    about = ("generate the secrets file on the db host (database password, SECRET_KEY), or remove a secret no "
             "longer declared; never shown")
    path: str
    group: str
    drop: tuple[str, ...] = ()  # names no longer declared in the state file: removed with their values
    generate: tuple[str, ...] = ()  # more names to generate a value for if missing (previews' passwords)


@dataclass(frozen=True)
class SecretsRead(Change):
    kind = "secrets-read"
    about = "read the db host's secrets into the deploying machine's memory (never to disk or output)"
    path: str
    memory_key: str  # where the bytes wait in the deploying process (operations.memory)


@dataclass(frozen=True)
class SecretsCopy(Change):
    kind = "secrets-copy"
    about = "copy the secrets to a web host from that memory; never shown"
    path: str
    group: str
    memory_key: str


@dataclass(frozen=True)
class Database(Change):
    kind = "database"
    about = ("create a schema version's database: empty (the first), a verified copy of the current one, or a "
             "promoted preview's own database adopted (its tables renamed into it: `promote: keep-data`)")
    database: str
    copy_from: str = ""  # empty: a new, empty database
    recreate: bool = False  # a leftover of a deploy that did not finish: dropped first
    adopt_from: str = ""  # a promoted preview's own database: its tables are renamed into it (no copy)


@dataclass(frozen=True)
class DbUser(Change):
    kind = "db-user"
    about = ("the app's database account (one per web host address) and its privileges: ALL on each of the "
             "app's schema databases by name, nothing else")
    user: str
    host: str
    secrets: str  # the secrets file the password is read from, on the db host
    grant: tuple[str, ...] = ()  # databases (as GRANT names them: `_` escaped) to grant ALL on
    revoke: tuple[str, ...] = ()  # grants to take away (a dropped database, an old pattern); "*": all of them


@dataclass(frozen=True)
class ConfigFile(Change):
    kind = "config"
    about = "write a managed config file (unit templates, nginx site, MariaDB network, sudo rules); shows a diff"
    path: str
    content: str
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    reload: str = ""  # what reads it: nginx (tested, restored on failure), systemd, mariadb


@dataclass(frozen=True)
class RemoveFile(Change):
    kind = "nginx-default-site"
    about = "remove Debian's default nginx site (it would answer for the app's port)"
    path: str
    reload: str = "nginx"


@dataclass(frozen=True)
class VenvBuild(Change):
    """What a virtualenv's build is made of (the fields of `venv-start` and `venv`; not a kind of its own)."""

    path: str
    requirements: str
    extra: tuple[str, ...]
    undo: str  # the deploy lock's undo hook: stops the build if the run ends before its `venv` step


@dataclass(frozen=True)
class VenvStart(VenvBuild):
    kind = "venv-start"
    about = ("start building a shared virtualenv in the background, first thing on the host (python3 -m venv + pip "
             "install), while the steps that do not need it run; its `venv` step waits for it")


@dataclass(frozen=True)
class Venv(VenvBuild):
    kind = "venv"
    about = ("a shared virtualenv for a requirements hash: its build waited for (or built here) and marked ready "
             "only if pip succeeded")
    started: bool = False  # by a venv-start step earlier in the run: only waited for here


@dataclass(frozen=True)
class Build(Change):
    kind = "release"
    about = ("build a release into versions/<N>/<id>: hard links of the served release + the changed files "
             "(or all of it), settings module, collectstatic (or the served release's assets as hard links when "
             "nothing collectstatic reads changed)")
    app: str
    release_id: str
    building: str  # versions/<N>/.<id>.building: renamed to `final` only when complete
    final: str
    tarball: str  # where the archive is uploaded on the host
    archive: str  # the archive on the deploying machine (whole, or only what changed since base_dir's commit)
    venv: str
    settings: str  # the rendered settings module
    runtime: str  # pinned_runtime.py, beside it (the write freeze's middleware)
    metadata: str  # .pinned/release.json
    by_id: str  # the by-id link, and its target
    by_id_target: str
    base_dir: str = ""  # a release on the host to start from as hard links ("" = send it whole)
    replaced: tuple[str, ...] = ()  # files of the base that differ in the release (changed or deleted)
    links: tuple[tuple[str, str], ...] = ()  # (path inside the project, target): `shared:` links, `scratch:`
    static_key: str = ""  # what collectstatic's output depends on beyond the files (state/static.py), recorded
    static_linked: bool = False  # nothing collectstatic reads changed: assets/ are hard links of base_dir's
    secrets: str = ""  # the host's secrets file, whose fingerprints collectstatic records
    undo: str = ""  # the deploy lock's undo hook that stops the chained build if the run ends while it runs


@dataclass(frozen=True)
class Migrate(Change):
    kind = "migrate"
    about = ("run Django's migrations, once (first web host): on a new schema version's copy, or in place on "
             "the live database (`schema_change: in_place`)")
    app: str
    release_dir: str
    database: str
    release_id: str
    drop_on_failure: bool = True  # a copy made for this release is dropped if it fails; a live database never
    undo: str = ""  # the deploy lock's undo hook: a run that ends first lets the migration finish (run_guard.sh)


@dataclass(frozen=True)
class SchemaRecord(Change):
    kind = "schema"
    about = "record a schema version on a web host (versions/<N>/schema.json)"
    schema_dir: str
    info: str


@dataclass(frozen=True)
class Start(Change):
    kind = "app"
    about = "start a release's socket and service, health-checked on its own socket"
    socket_unit: str
    service_unit: str
    socket: str
    health_url: str
    health_host: str
    release_dir: str
    release_id: str
    loaded: str = ""  # once healthy: what it was started with is recorded here (fingerprints, never values)
    secrets: str = ""  # the host's secrets file (whose fingerprints are recorded)
    env: str = ""  # the env's fingerprints (JSON), recorded with them
    warm_timer: str = ""  # a warm release's timer: cancelled first (its units are already running)
    restart: bool = False  # running with another env or secrets than now: restarted instead of started


@dataclass(frozen=True)
class Restart(Change):
    kind = "restart"
    about = ("restart the current release's service for a changed env or secret (its socket stays: requests wait, "
             "none is refused), health-checked, and record what it now runs with")
    service_unit: str
    socket: str
    health_url: str
    health_host: str
    release_id: str
    loaded: str
    secrets: str
    env: str


@dataclass(frozen=True)
class Link(Change):
    kind = "link"
    about = "switch a schema version's `last` link, or repair a release's `by-id` link (atomic: ln -s + mv -T)"
    path: str
    target: str


@dataclass(frozen=True)
class Switch(Change):
    kind = "switch"
    about = "switch `current` and nginx's upstream to a release (atomic), reload nginx, record history"
    current: str
    target: str
    served: str  # the schema version's marker: its database now takes the site's writes
    upstream_path: str
    upstream: str
    history: str
    from_release: str
    release_id: str
    by: str  # who deploys (user@machine), for the history


@dataclass(frozen=True)
class WriteFreeze(Change):
    kind = "write-freeze"
    about = ("on a web host, refuse writes (nginx: POST/PUT/PATCH/DELETE get 503 + Retry-After) from a schema "
             "change's copy to its switch (`+`), and lift it (`-`); lifted too if the run fails or dies")
    on: bool
    conf: str  # the nginx include of the site
    content: str  # what it holds now (refusing writes, or not)
    off_content: str  # what lifts the freeze (written by the undo hook if the run ends without lifting it)
    marker: str  # exists while frozen (the app's runtime answers 503 to a write its database refused)
    undo: str  # the lock's undo hook for this freeze


@dataclass(frozen=True)
class DatabaseGuard(Change):
    kind = "db-freeze"
    about = ("on the db host, let the app's accounts only read the database being copied (`+`), once every "
             "connection made before has ended; give the writes back after the switch (`-`)")
    on: bool
    user: str  # the app's account name (every host part of it)
    grant: str  # the database as GRANT names it (`_` escaped)
    database: str
    undo: str


@dataclass(frozen=True)
class Stop(Change):
    kind = "stop"
    about = "stop and disable a release's service that is no longer current (once nginx has drained it)"
    socket_unit: str
    service_unit: str
    release_id: str


@dataclass(frozen=True)
class Warm(Change):
    kind = "warm"
    about = ("keep the release that served until the switch running for `keep_warm` (a rollback to it needs no "
             "start): a timer on the host stops it when the window ends")
    socket_unit: str
    service_unit: str
    release_id: str
    timer: str  # pinned-warm-<app>@<release>.timer (restarted: the window starts now)


@dataclass(frozen=True)
class Prune(Change):
    kind = "prune"
    about = "remove a release beyond `keep_releases` (failed first), a leftover build, or an unused virtualenv"
    root: str  # the path must lie under root's versions/ or venvs/ (checked on the host too)
    path: str
    release_id: str = ""  # a release: its units and by-id link go too
    socket_unit: str = ""  # its units: named only when systemd holds one of them (observed) or one is enabled
    service_unit: str = ""
    by_id: str = ""


# Every kind, in the order of the README's table.
KINDS: tuple[type[Change], ...] = (Packages, PackagesStart, Service, User, Directory, Secrets, SecretsRead,
                                   SecretsCopy, Database, DbUser, ConfigFile, RemoveFile, VenvStart, Venv, Build,
                                   Migrate, SchemaRecord, Start, Restart, Link, Switch, WriteFreeze, DatabaseGuard,
                                   Stop, Warm, Prune)


@dataclass(frozen=True)
class BackupTimer(Change):
    kind = "backup-timer"
    about = ("enable the db host's scheduled-backup timer (`backups:`), or disable it and remove its units and "
             "script (the backups stay)")
    timer: str
    enable: bool
    remove: tuple[str, ...] = ()  # disabling: the files that go with it (units, script)


KINDS += (BackupTimer,)


@dataclass(frozen=True)
class ProcessStart(Change):
    kind = "process"
    about = ("start (or restart) a release's processes (`processes:`) before the switch; one that exits or restarts "
             "within the settle time fails the deploy like a failed health check (the release is marked failed)")
    units: tuple[str, ...]  # <app>-<name>@<release>.service
    release_id: str
    release_dir: str
    restart: bool = False  # the current release's, for a changed command, env or secret
    settle: int = 3  # seconds each must keep running (no exit, no restart)
    socket_unit: str = ""  # the release's web units: stopped with them when one fails to start
    service_unit: str = ""


@dataclass(frozen=True)
class ProcessStop(Change):
    kind = "process-stop"
    about = ("stop and disable the processes of a release that is no longer current (SIGTERM, then TimeoutStopSec), "
             "apart from its web units; remove the units of processes no longer declared")
    units: tuple[str, ...]
    remove: tuple[str, ...] = ()  # unit files of processes no longer in `processes:`


@dataclass(frozen=True)
class ScheduleTimer(Change):
    kind = "schedule"
    about = ("enable a scheduled command's timer (`schedule:`; its service runs in `current`), or disable it and "
             "remove its units")
    timer: str
    enable: bool
    remove: tuple[str, ...] = ()


KINDS += (ProcessStart, ProcessStop, ScheduleTimer)


@dataclass(frozen=True)
class Watch(Change):
    kind = "watch"
    about = ("a rollout's canary: after its switch, its health URL every second and the share of 5xx answers in "
             "the site's nginx log for `rollout.watch`; too many, or a failed health check, switches it back to the "
             "release it served (still running) and stops the run before any other web host switches")
    socket: str  # the new release's socket (its health URL is asked there)
    health_host: str
    health_url: str
    access_log: str
    seconds: int
    max_error_rate: str  # percent, e.g. "1.0"
    upstream_path: str
    old_upstream: str  # the upstream file as it was: what a failed watch puts back
    current: str
    old_target: str
    history: str
    new_release: str
    old_release: str
    by: str
    served: str


KINDS += (Watch,)


@dataclass(frozen=True)
class TlsFiles(Change):
    kind = "tls-files"
    about = ("upload the site's certificate (root 0644) and its private key (root 0600, over SSH's stdin, never "
             "shown) together; nginx tested (both put back if it fails) and reloaded")
    certificate_path: str
    certificate: str  # the PEM text (public)
    key_path: str
    key_source: str  # the local key file, read when it is sent (never carried in the plan)
    key_digest: str  # its SHA-256 when the state file was checked: a key changed since is refused


@dataclass(frozen=True)
class Certificate(Change):
    kind = "certificate"
    about = ("get the site's certificate from the ACME CA with certbot (http-01 through the site's nginx, from "
             "its webroot); renewed by certbot.timer, nginx reloaded by the deploy hook")
    cert_name: str
    domains: tuple[str, ...]
    email: str
    directory: str
    webroot: str
    ca_bundle: str = ""  # on the host: the CA of a test/private ACME server's HTTPS ("": the host's store)
    force: bool = False  # a new certificate even if the lineage is not due (another directory)


@dataclass(frozen=True)
class TlsRemove(Change):
    kind = "tls-remove"
    about = ("remove what HTTPS left that the state file no longer asks for (after nginx stopped using it): an "
             "uploaded certificate and key, the ACME lineage (`certbot delete`), its CA bundle and drop-in")
    paths: tuple[str, ...]
    cert_name: str = ""  # a certbot lineage to delete ("": none)


KINDS += (TlsFiles, Certificate, TlsRemove)


# Previews (state/previews.py): releases running beside `current` at their own address.
@dataclass(frozen=True)
class PreviewAccount(Change):
    kind = "preview-account"
    about = ("a preview's database account `<app>_pv_<name>` (one per web host address): its password from the "
             "secrets file; SELECT (or ALL) on the current database, or ALL on its own copy, nothing else")
    user: str
    host: str
    secrets: str
    password_key: str  # the secrets file's name of its password (generated on the db host, never shown)
    privileges: str  # SELECT or ALL
    database: str  # as GRANT names it (`_` escaped)


@dataclass(frozen=True)
class PreviewMigrate(Change):
    kind = "preview-migrate"
    about = "run a preview's migrations on its own copy of the database (first web host), through its own account"
    app: str
    release_dir: str
    database: str
    user: str
    password_key: str


@dataclass(frozen=True)
class PreviewStart(Change):
    kind = "preview-start"
    about = "start (or restart, for a changed release) a preview's socket and service, health-checked on its socket"
    socket_unit: str
    service_unit: str
    socket: str
    health_url: str
    health_host: str
    restart: bool = False


@dataclass(frozen=True)
class PreviewRemove(Change):
    kind = "preview-remove"
    about = "stop a preview no longer in the state file and remove its units and nginx server (`-`)"
    socket_unit: str
    service_unit: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class PreviewDrop(Change):
    kind = "preview-drop"
    about = "drop a removed preview's database accounts, and its own database if it had one (`-`)"
    accounts: tuple[str, ...]  # user@host
    database: str = ""


KINDS += (PreviewAccount, PreviewMigrate, PreviewStart, PreviewRemove, PreviewDrop)
