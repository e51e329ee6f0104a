"""The plan: the minimal steps that take the observed hosts to the desired state (pure and deterministic).

`plan()` composes small planners, one per concern. Each returns `Step`s: plain frozen data that the
renderers print; each step holds one typed change (state/changes.py) with every argument of the one
operation deploy.py runs for it. Nothing here touches a host.

A plan is one of three things (`Plan.status`): converged (no steps), changes, or blocked — it cannot
converge (e.g. the pinned schema's database is missing): it says why, and nothing may run.

Steps carry a phase. deploy.py runs the phases in order, each on every host before the next starts, so
the database work happens once on the db host before any web host migrates, and every web host has the
new release built and healthy before `current` moves on any of them.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
from dataclasses import dataclass, replace

from . import changes as c
from .desired import (
    COPY_BYTES_PER_SECOND,
    Desired,
    HostSpec,
    ManagedFile,
    db_user_host,
    env_file,
    env_fingerprint,
    env_values,
    freeze_conf,
    freeze_estimate,
    health_host,
    mariadb_network_file,
    release_links,
    release_metadata,
    runtime_module,
    schema_info,
    settings_module,
    site_files,
    upstream_file,
    user_files,
)
from .layout import NGINX_DEFAULT_SITE
from .model import VENV_PACKAGES
from .observed import HostObserved, ReleaseOnDisk
from .previews import SECRET_PREFIX as PREVIEW_SECRET_PREFIX
from .previews import plan_previews, preview_releases, preview_secret_names, preview_venvs, promote_allocation
from .python_need import python_too_old
from .static import reuse_assets, static_key

ADD, CHANGE, REMOVE = "add", "change", "remove"
SYMBOL = {ADD: "+", CHANGE: "~", REMOVE: "-"}
# Phases, in order: each runs on every host before the next one starts.
# Phases whose commands are quick get a bound (seconds): a host that stops answering there (a cut network)
# fails the run, which stops every host, instead of hanging it. (The write freeze waits up to 30 s for
# nginx's workers or the database's connections; stop up to 30 s for nginx, then systemd's 35 s.)
PHASE_TIMEOUTS = {"freeze": 120, "guard": 120, "switch": 60, "rollout": 60, "thaw": 120}
# With `rollout:`, "switch" holds only the canary's switch, "watch" its watch, and "rollout" the other web hosts'
# switches, batch after batch (a step's `wave`); without it every web host switches in "switch".
PHASES = ("system", "secrets", "share", "accounts", "prepare", "freeze", "guard", "database", "migrate", "schema",
          "start", "switch", "watch", "rollout", "thaw", "site", "cleanup")


@dataclass(frozen=True)
class Step:
    host: str
    action: str  # add / change / remove
    change: c.Change  # what runs: the operation's every argument
    target: str
    reason: str
    diff: str = ""  # unified diff of a config file
    sensitive: bool = False  # the target's value is a secret: never shown
    phase: str = "system"
    wave: int = 0  # within its phase: waves run one after the other (a rollout's batches)

    @property
    def kind(self) -> str:
        return self.change.kind


# Every kind of step, documented (the README's table is generated from this).
STEP_KINDS = {kind.kind: kind.about for kind in c.KINDS}

CONVERGED, CHANGES, BLOCKED = "converged", "changes", "blocked"
OTHER_GRANT = "other"
GRANT_LINE = re.compile(r"^GRANT (.+?) ON `(.+?)`\.\* TO ")


@dataclass(frozen=True)
class Plan:
    env: str
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()  # why it cannot converge: nothing may run
    certificates: tuple = ()  # plan_tls.CertificateLine per web host (site.tls): what the plan shows

    @property
    def status(self) -> str:
        return BLOCKED if self.blocked else (CHANGES if self.steps else CONVERGED)

    def for_host(self, host: str) -> list[Step]:
        return [s for s in self.steps if s.host == host]

    def slots(self, host: str, phase: str) -> list[Step | None]:
        """The host's steps of a phase, one per slot; every host has the same number of slots (None: nothing
        to do there), and a wave's slots come after the previous wave's on every host."""
        out: list[Step | None] = []
        for wave in sorted({s.wave for s in self.steps if s.phase == phase}):
            width = max(sum(1 for s in self.steps if s.host == h and s.phase == phase and s.wave == wave)
                        for h in self.hosts)
            mine = [s for s in self.steps if s.host == host and s.phase == phase and s.wave == wave]
            out += mine + [None] * (width - len(mine))
        return out

    def width(self, phase: str) -> int:
        """How many slots a phase has (the most steps any one host has in each of its waves, added up)."""
        return len(self.slots(self.hosts[0], phase)) if self.hosts else 0

    @property
    def summary(self) -> dict[str, int]:
        return {a: sum(1 for s in self.steps if s.action == a) for a in (ADD, CHANGE, REMOVE)}

    @property
    def empty(self) -> bool:
        """Nothing to run (converged, or blocked)."""
        return not self.steps


# ------------------------------------------------------------------ helpers


def file_diff(path: str, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=path if old is not None else "/dev/null", tofile=path,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


UNIT_FILE = re.compile(r"^/etc/systemd/system/[^/]+\.(service|socket|timer)$")  # not a drop-in (<unit>.d/)


def reload_of(wanted: ManagedFile, observed: HostObserved) -> str:
    """What to reload after writing a file: nothing for a unit file new on the host (not a drop-in) of which
    systemd holds no unit (none listed, nor an instance of a template). systemd loads a unit it does not hold
    from disk when it is first named, and since v246 it looks again when the unit folder changed after a
    lookup found nothing (its unit cache), so a daemon-reload (~0.3 s of systemd's CPU on the sandbox host,
    once per file) is needed only where it holds a unit the file defines."""
    m = UNIT_FILE.match(wanted.path)
    if wanted.reload != "systemd" or observed.files.get(wanted.path) is not None or not m:
        return wanted.reload
    name = posixpath.basename(wanted.path)
    stem, suffix = name.rsplit(".", 1)
    held = [u for u in observed.units if u == name or (stem.endswith("@") and u.startswith(stem)
                                                       and u.endswith("." + suffix))]
    return "systemd" if held else ""


def config_step(host: str, observed: HostObserved, wanted: ManagedFile, phase: str) -> Step | None:
    have = observed.files.get(wanted.path)
    change = c.ConfigFile(path=wanted.path, content=wanted.content, mode=wanted.mode, owner=wanted.owner,
                          group=wanted.group, reload=reload_of(wanted, observed))
    if have is None:
        return Step(host, ADD, change, wanted.path, f"{wanted.label}: missing",
                    diff=file_diff(wanted.path, None, wanted.content), phase=phase)
    if have.content != wanted.content:
        return Step(host, CHANGE, change, wanted.path, f"{wanted.label}: content differs (drift)",
                    diff=file_diff(wanted.path, have.content, wanted.content), phase=phase)
    if (have.mode, have.owner, have.group) != (wanted.mode, wanted.owner, wanted.group):
        return Step(host, CHANGE, change, wanted.path,
                    f"{wanted.label}: {have.owner}:{have.group} {have.mode} should be "
                    f"{wanted.owner}:{wanted.group} {wanted.mode}", phase=phase)
    return None


def needs_build(o: HostObserved, release_id: str, schema: int) -> bool:
    """A release is built unless it is on disk, ready, in the schema version it belongs to."""
    r = o.releases.get(release_id)
    return r is None or r.status != "ready" or r.schema != schema


def last_after(o: HostObserved, schema: int, release_id: str) -> str:
    """What `last` of a schema version names after this run: the pinned release when it is newly placed
    there (or `last` is missing or broken); otherwise it stays (a rollback does not move it)."""
    recorded = o.schemas.get(schema)
    last = recorded.last if recorded else None
    valid = last in o.releases and o.releases[last].schema == schema
    return release_id if release_id not in o.releases or not valid else last


def migration_names(paths) -> str:
    return ", ".join(p.split("/")[-1].removesuffix(".py") for p in paths) or "none"


# ------------------------------------------------------------------ schema versions


@dataclass(frozen=True)
class Allocation:
    """Where the pinned release's database lives, and what it takes to get there."""

    schema: int
    current_schema: int | None
    new_database: bool = False  # create it: a copy of `copy_from`, or empty for the very first one
    copy_from: int | None = None
    migrate: bool = False
    warnings: tuple[str, ...] = ()
    blocked: bool = False  # its warnings say why the hosts cannot converge: nothing may change
    in_place: bool = False  # migrate the current schema's live database (schema_change: in_place)
    adopt_from: str = ""  # a promoted preview's own database, adopted as it is (promote: keep-data; previews.py)
    database_note: str = ""  # the plan's reason for the new database, when previews.py says it


def history_events(observed: HostObserved, schema_of: dict[str, int]):
    """(time, from schema, to schema) of every recorded switch."""
    for line in observed.history:
        parts = line.split()
        fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        if len(parts) >= 2 and parts[1] == "switch":
            yield parts[0], schema_of.get(fields.get("from", "")), schema_of.get(fields.get("to", ""))


def allocate_schema(d: Desired, observed: dict[str, HostObserved]) -> Allocation:
    rel, lay = d.release, d.layout
    webs = [observed[h.name] for h in d.web_hosts]
    db = observed[d.db_host.name]
    schemas: dict = {}
    for o in webs:
        for number, s in o.schemas.items():
            if number not in schemas or (s.fingerprint and s.migrated):
                schemas[number] = s
    complete = {n: s for n, s in schemas.items() if s.fingerprint and s.migrated}
    schema_of = {rid: r.schema for o in webs for rid, r in o.releases.items()}
    current_schema = next((o.current_release.schema for o in webs if o.current_release), None)

    number = None
    for o in webs:
        r = o.releases.get(rel.id)
        if r and r.status == "ready" and r.schema in complete:
            number = r.schema
            break
    if number is None and current_schema in complete and complete[current_schema].fingerprint == rel.fingerprint:
        number = current_schema
    if number is None:
        same = [n for n, s in complete.items() if s.fingerprint == rel.fingerprint]
        number = max(same) if same else None

    served = {n for n, s in schemas.items() if s.served} | {to for o in webs for _t, _f, to in
                                                           history_events(o, schema_of) if to is not None}
    if number is not None and number != current_schema and number not in served and current_schema in complete:
        # Made for a release that never went live (its deploy failed after the copy): the copy is stale,
        # so it is made again from the current database.
        return Allocation(number, current_schema, new_database=True, copy_from=current_schema, migrate=True,
                          warnings=(f"{lay.database(number)} was copied for a deploy that never went live: "
                                    f"it is copied again from {lay.database(current_schema)}.",))
    if number is not None:
        database = lay.database(number)
        if db.mysql_running and database not in db.databases:
            return Allocation(number, current_schema, blocked=True, warnings=(
                f"schema version {number} is recorded on the web hosts but its database {database} is missing "
                f"on {d.db_host.name}: restore it (or pin a release of another schema).",))
        warnings = []
        if complete.get(number) and complete[number].fingerprint != rel.fingerprint:
            warnings.append(f"release {rel.id} has other migrations than {database} (changed in place): it runs on "
                            "the database as it is now.")
        if current_schema is not None and number != current_schema:
            events = list(history_events(webs[0], schema_of))
            if number < current_schema:
                since = next((t for t, frm, to in reversed(events) if to == current_schema and frm != current_schema),
                             "unknown")
                warnings.append(
                    f"rolling back across a schema change: writes made to {lay.database(current_schema)} since it "
                    f"became current ({since}) will not be in {database}.")
            else:
                left = next((t for t, frm, to in reversed(events) if frm == number and to != number), "unknown")
                warnings.append(f"returning to {database} as it was left when it stopped being current ({left}).")
        return Allocation(number, current_schema, warnings=tuple(warnings))

    if current_schema in complete and d.state.schema_change == "in_place":
        # No copy: the live database is migrated before the switch; the old release's schema is gone.
        return Allocation(current_schema, current_schema, migrate=True, in_place=True, warnings=(
            f"schema_change in_place: {lay.database(current_schema)} is migrated while the site uses it, with no "
            "copy and no write freeze: rolling back across this change keeps the new schema, and a migration "
            "that fails half-way leaves what it did (MariaDB cannot roll DDL back).",))
    # A new schema version: the first, or a copy of the current one, then migrated.
    numbers = set(schemas) | {n for n in map(lay.schema_of_database, db.databases) if n is not None}
    # A schema version made for a preview with other migrations is that preview's, not this release's.
    theirs = {o.releases[r.id].schema for o in webs for r in d.previews.values()
              if r.id in o.releases and r.fingerprint != rel.fingerprint}
    unfinished = sorted(n for n in numbers if n not in complete and n != current_schema and n not in theirs)
    number = unfinished[-1] if unfinished else (max(numbers) + 1 if numbers else 0)
    copy_from = current_schema if current_schema is not None and current_schema in complete else None
    if copy_from is None and complete:
        return Allocation(number, current_schema, blocked=True, warnings=(
            f"release {rel.id} needs a new schema version but no release is current to copy the database from: "
            f"fix `current` first (pin a release of schema {max(complete)}).",))
    return Allocation(number, current_schema, new_database=True, copy_from=copy_from, migrate=True)


# ------------------------------------------------------------------ planners, one per concern


def plan_system(d: Desired, host: HostSpec, o: HostObserved) -> list[Step]:
    steps: list[Step] = []
    app, lay = d.state.app, d.layout
    missing = [p for p in d.packages(host) if p not in o.packages]
    first = [p for p in missing if p in VENV_PACKAGES]
    rest = [p for p in missing if p not in VENV_PACKAGES]
    if first and rest:
        # What a virtualenv's build needs goes in first: the build (venv-start) then runs beside the other
        # installs (MariaDB, nginx: most of a bare host's setup), which run in the background too while the
        # users, folders and secrets are made, waited for before the database's account (phase accounts).
        steps.append(Step(host.name, ADD, c.Packages(tuple(first)), " ".join(first),
                          "not installed (first: the virtualenv's build needs it)"))
        steps.append(Step(host.name, ADD, c.PackagesStart(tuple(rest), lay.packages_job, lay.packages_undo),
                          " ".join(rest), "not installed: installed in the background meanwhile"))
        steps.append(Step(host.name, ADD, c.Packages(tuple(rest), update=False, job=lay.packages_job,
                                                     undo=lay.packages_undo), " ".join(rest),
                          "its install (packages-start) waited for", phase="accounts"))
    elif missing:
        steps.append(Step(host.name, ADD, c.Packages(tuple(missing)), " ".join(missing), "not installed"))
    for unit, role in (("nginx.service", "web"), ("mariadb.service", "db")):
        if role in host.roles and not (o.unit_active(unit) and o.unit_enabled(unit)) and not missing:
            state = o.units.get(unit, {})
            steps.append(Step(host.name, CHANGE, c.Service(unit), unit,
                              f"{state.get('active', 'unknown')}, enabled={bool(state.get('enabled'))}"))
    if app not in o.users:
        steps.append(Step(host.name, ADD, c.User(app, system=True, home=lay.root), app,
                          "the app's system user and group"))
    for user in d.state.users:
        keys = "".join(k + "\n" for k in user.ssh_keys)
        have = o.users.get(user.name)
        change = c.User(user.name, system=False, keys=tuple(user.ssh_keys))
        if have is None:
            steps.append(Step(host.name, ADD, change, user.name, "extra user from the state file"))
        elif (have.get("authorized_keys") or "") != keys and (user.ssh_keys or have.get("authorized_keys")):
            steps.append(Step(host.name, CHANGE, change, user.name, "SSH keys differ from the state file"))
    for wanted in user_files(d):
        step = config_step(host.name, o, wanted, "system")
        if step:
            steps.append(step)
    if "web" in host.roles:
        shared_root = (lay.shared_root,) if d.state.shared else ()
        shared_root += (lay.scratch_root,) if d.state.scratch else ()
        for path, change in [*((p, c.Directory(p)) for p in (*lay.directories, *shared_root)),
                             *((lay.shared(n), c.Directory(lay.shared(n), owner=app, group=app))
                               for n in d.state.shared_names)]:
            have = o.paths.get(path)
            want = {"type": "dir", "mode": change.mode, "owner": change.owner, "group": change.group}
            if have is None:
                steps.append(Step(host.name, ADD, change, path, "missing"))
            elif {k: have.get(k) for k in want} != want:
                why = "the app writes there" if change.owner == app else "the app user must not write its code"
                steps.append(Step(host.name, CHANGE, change, path,
                                  f"{have.get('owner')}:{have.get('group')} {have.get('mode')} should be "
                                  f"{change.owner}:{change.group} {change.mode} ({why})"))
    return steps


def _secrets_ok(sec: dict | None, app: str) -> tuple[bool, bool]:
    """(complete, permissions right)"""
    complete = bool(sec) and {"DB_PASSWORD", "SECRET_KEY"} <= set(sec.get("keys", ()))
    return complete, complete and (sec.get("mode"), sec.get("owner"), sec.get("group")) == ("0640", "root", app)


def plan_secrets(d: Desired, observed: dict[str, HostObserved]) -> list[Step]:
    """Secrets are generated on the db host; web hosts elsewhere get the same file (one SECRET_KEY for all)."""
    steps: list[Step] = []
    app, lay = d.state.app, d.layout
    db = d.db_host
    db_complete, db_perms = _secrets_ok(observed[db.name].secrets, app)
    drop = undeclared_secrets(d, observed[db.name])
    previews = preview_secret_names(d)
    new_previews = tuple(k for k in previews if k not in ((observed[db.name].secrets or {}).get("keys") or ()))
    generate = c.Secrets(lay.secrets, group=app, drop=drop, generate=previews)
    if db_complete and new_previews:  # a new preview's database password (before any web host copies the file)
        steps.append(Step(db.name, CHANGE, generate, lay.secrets, f"{', '.join(new_previews)} generated on the "
                          "server (a preview's database password)" + (f"; {', '.join(drop)} removed" if drop else ""),
                          sensitive=True, phase="secrets"))
    elif not db_complete:
        steps.append(Step(db.name, ADD, generate, lay.secrets, "generated on the server" + (
            f"; {', '.join(drop)} no longer declared: removed" if drop else ""), sensitive=True, phase="secrets"))
    elif drop:
        steps.append(Step(db.name, REMOVE, generate, lay.secrets, f"{', '.join(drop)} no longer declared in the "
                          "state file: removed with its value", sensitive=True, phase="secrets"))
    elif not db_perms:
        sec = observed[db.name].secrets
        steps.append(Step(db.name, CHANGE, generate, lay.secrets,
                          f"{sec.get('owner')}:{sec.get('group')} {sec.get('mode')} should be root:{app} 0640",
                          sensitive=True, phase="secrets"))
    wanted = wanted_secret_fingerprints(d, observed)
    copies = []
    for web in d.web_hosts:
        if web.name == db.name:
            continue
        o = observed[web.name]
        complete, perms = _secrets_ok(o.secrets, app)
        if not db_complete or not complete or o.secrets_digest != observed[db.name].secrets_digest or not perms \
                or drop or new_previews:
            changed = changed_names(o.secret_fingerprints, wanted)
            reason = "missing" if not complete else ((", ".join(changed) or "differs from the db host's")
                                                     if perms else "permissions")
            copies.append(Step(web.name, CHANGE if complete else ADD,
                               c.SecretsCopy(lay.secrets, group=app, memory_key=lay.secrets_memory_key),
                               lay.secrets, f"{reason}: copied from {db.name}", sensitive=True, phase="share"))
    if copies:
        steps.append(Step(db.name, CHANGE, c.SecretsRead(lay.secrets, memory_key=lay.secrets_memory_key),
                          lay.secrets, f"read into memory for {', '.join(s.host for s in copies)}",
                          sensitive=True, phase="secrets"))
    return steps + copies


PINNED_SECRETS = ("DB_PASSWORD", "SECRET_KEY")


def undeclared_secrets(d: Desired, db: HostObserved) -> tuple[str, ...]:
    """Secrets the db host holds that the state file no longer declares (pinned's own stay)."""
    keys = (db.secrets or {}).get("keys") or ()
    previews = preview_secret_names(d)
    return tuple(sorted(k for k in keys if k not in PINNED_SECRETS and k not in d.state.secrets and k not in previews))


def missing_secrets(d: Desired, observed: dict[str, HostObserved]) -> tuple[str, ...]:
    """Why the plan is blocked by declared secrets with no value on the db host (one line each)."""
    db = d.db_host
    keys = set((observed[db.name].secrets or {}).get("keys") or ())
    return tuple(f"secret {name} has no value on {db.name}: set it with `pinned --env {d.env} secret set {name}` "
                 "(reads it from standard input)" for name in d.state.secrets if name not in keys)


def wanted_secret_fingerprints(d: Desired, observed: dict[str, HostObserved]) -> dict[str, str]:
    """What every web host's secrets are after this run: the db host's, less the names no longer declared."""
    db = observed[d.db_host.name]
    drop = set(undeclared_secrets(d, db))
    return {k: v for k, v in db.secret_fingerprints.items() if k not in drop}


def env_fingerprints(d: Desired) -> dict[str, str]:
    return {name: env_fingerprint(name, value) for name, value in sorted(env_values(d).items())}


def changed_names(have: dict[str, str], want: dict[str, str]) -> list[str]:
    """Names whose fingerprint differs, is new or is gone, sorted, each with what happened."""
    out = []
    for name in sorted(set(have) | set(want)):
        if name not in have:
            out.append(f"{name} added")
        elif name not in want:
            out.append(f"{name} removed")
        elif have[name] != want[name]:
            out.append(f"{name} changed")
    return out


def plan_database(d: Desired, host: HostSpec, o: HostObserved, alloc: Allocation) -> list[Step]:
    steps: list[Step] = []
    app, lay = d.state.app, d.layout
    if any(w.name != host.name for w in d.web_hosts):
        step = config_step(host.name, o, mariadb_network_file(d), "database")
        if step:
            steps.append(step)
    database = lay.database(alloc.schema)
    if alloc.new_database:
        recreate = database in o.databases
        if alloc.copy_from is not None:
            source = lay.database(alloc.copy_from)
            tables, rows = o.db_stats.get(source, (0, 0))[:2]
            reason = f"copy of {source}: {tables} tables, ~{rows} rows; then migrate"
        else:
            source, reason = "", f"schema version {alloc.schema}"
        reason = alloc.database_note or reason
        if recreate:
            reason = "left over from a deploy that did not finish: dropped and made again: " + reason
        steps.append(Step(host.name, CHANGE if recreate else ADD, c.Database(database, source, recreate,
                                                                              alloc.adopt_from), database,
                          reason, phase="database"))
    # The app's accounts get ALL on each of its schema databases by name (`_` escaped: never a pattern another
    # app's names could match), and nothing else; before the write freeze (phase accounts), so the freeze's
    # guard finds them as they should be (MariaDB grants on a database it makes later).
    wanted = {lay.database_grant(n) for n in map(lay.schema_of_database, o.databases | {database}) if n is not None}
    for web in d.web_hosts:
        account = f"{app}@{db_user_host(d, web)}"
        grants = account_grants(o.db_users.get(account) or ())
        grant = tuple(sorted(g for g in wanted if grants.get(g) != "ALL PRIVILEGES"))
        revoke = tuple(sorted(g for g in grants if g not in wanted))
        if any(v == OTHER_GRANT for v in grants.values()):  # not pinned's: take everything away, grant again
            grant, revoke = tuple(sorted(wanted)), ("*",)
        change = c.DbUser(app, db_user_host(d, web), secrets=lay.secrets, grant=grant, revoke=revoke)
        if account not in o.db_users:
            steps.append(Step(host.name, ADD, change, account,
                              f"for {web.name}: ALL on {', '.join(sorted(wanted))} only", phase="accounts"))
        elif grant or revoke:
            said = [f"+ {g}" for g in grant] + [f"- {g}" for g in revoke]
            steps.append(Step(host.name, CHANGE, change, account, f"privileges: {', '.join(said)}", phase="accounts"))
    return steps


def account_grants(lines) -> dict[str, str]:
    """`GRANT <privileges> ON `<db>`.* TO …` lines (SHOW GRANTS) → {db as GRANT names it: privileges}."""
    grants = {}
    for line in lines:
        m = GRANT_LINE.match(line)
        if m:
            grants[m.group(2)] = m.group(1)
        else:
            grants[line] = OTHER_GRANT  # global or table privileges are not pinned's: revoke them
    return grants


def restart_reason(loaded: dict | None, env: dict[str, str], secrets: dict[str, str]) -> str:
    """Why the running release must restart to run with the configuration it should (empty: it need not):
    names only, never values."""
    if not isinstance(loaded, dict):
        return "what it runs with is not recorded (started before pinned recorded it): restarted to read the env " \
               "and secrets files"
    said = []
    changed = [n for n in changed_names(loaded.get("secrets") or {}, secrets)
               if not n.startswith(PREVIEW_SECRET_PREFIX)]  # a preview's password: not the current release's
    if changed:
        said.append("secrets (sensitive): " + ", ".join(changed))
    changed = changed_names(loaded.get("env") or {}, env)
    if changed:
        said.append("env: " + ", ".join(changed))
    return "; ".join(said)


def plan_release(d: Desired, host: HostSpec, o: HostObserved, alloc: Allocation, first_web: bool,
                 source_migrations: tuple[str, ...], copied_from: int | None,
                 wanted_secrets: dict[str, str] | None = None) -> list[Step]:
    steps: list[Step] = []
    rel, lay, app = d.release, d.layout, d.state.app
    schema = alloc.schema
    release_dir = lay.release_dir(schema, rel.id)
    on_disk = o.releases.get(rel.id)
    build = needs_build(o, rel.id, schema)
    venv = lay.venv(rel.requirements_hash)
    for wanted in (*site_files(d), env_file(d)):
        if wanted.reload == "systemd" or wanted.path == lay.env_file:  # before the release is built and starts
            step = config_step(host.name, o, wanted, "prepare")
            if step:
                steps.append(step)
    if build and rel.requirements_hash not in o.venvs:
        # Built in the background from the start of the run (right after the packages: python3-venv), while the
        # steps up to here run; waited for just before the release's build, which needs it.
        undo = lay.venv_undo(rel.requirements_hash)
        steps.append(Step(host.name, ADD, c.VenvStart(venv, rel.requirements, tuple(rel.runtime), undo), venv,
                          "no virtualenv for these requirements yet: built in the background meanwhile",
                          phase="system"))
        steps.append(Step(host.name, ADD, c.Venv(venv, rel.requirements, tuple(rel.runtime), undo, started=True),
                          venv, "its build (venv-start) waited for, ready only if pip succeeded", phase="prepare"))
    if build:
        static = static_key(d, host, env_fingerprints(d))
        reason = "not on disk" if on_disk is None else f"on disk but {on_disk.status}"
        base = o.current_release
        transfer = d.transfers.get(host.name) if base and base.status == "ready" else None
        if transfer is not None and base is not None and transfer.get("base") == base.id:
            reason += (f": build from {rel.commit[:12]} as hard links of {base.id} + {transfer['changed']} changed "
                       f"file(s), {len(transfer['deleted'])} deleted, {transfer['bytes']} bytes to send")
            base_dir, replaced = lay.release_dir(base.schema, base.id), tuple(transfer["replaced"])
            static_linked, why = reuse_assets(o.current_static, static, wanted_secrets or {}, replaced,
                                              tuple(transfer.get("added", ())), d.state.django.settings)
            reason += f"; {why}" + (f": assets linked from {base.id}" if static_linked else "")
        else:
            transfer = d.transfers.get("", {})
            whole = transfer.get("bytes")
            reason += f": build from {rel.commit[:12]}" + (f", {whole} bytes to send" if whole else "")
            base_dir, replaced = "", ()  # sent whole
            static_linked = False
        links = release_links(d)
        if links:
            reason += "; links " + ", ".join(f"{path} → {target}" for path, target in links)
        steps.append(Step(host.name, ADD, c.Build(
            app=app, release_id=rel.id, building=lay.building_dir(schema, rel.id), final=release_dir,
            tarball=lay.tarball(schema, rel.id), archive=transfer.get("archive", ""), venv=venv,
            settings=settings_module(d, host, schema, release_dir), runtime=runtime_module(),
            metadata=release_metadata(d, schema),
            by_id=lay.by_id_link(rel.id), by_id_target=lay.by_id_target(schema, rel.id),
            base_dir=base_dir, replaced=replaced, links=links, static_key=static, static_linked=static_linked,
            secrets=lay.secrets, undo=lay.build_undo(rel.id),
        ), release_dir, reason, phase="prepare"))
    elif o.by_id.get(rel.id) != lay.by_id_target(schema, rel.id):  # on disk, but its units would not find it
        steps.append(Step(host.name, CHANGE, c.Link(lay.by_id_link(rel.id), lay.by_id_target(schema, rel.id)),
                          lay.by_id_link(rel.id), f"{o.by_id.get(rel.id) or 'missing'} → "
                          f"{lay.by_id_target(schema, rel.id)}", phase="prepare"))
    if first_web and alloc.migrate:
        new = [m for m in rel.migrations if m not in source_migrations]
        steps.append(Step(host.name, CHANGE, c.Migrate(app, release_dir, lay.database(schema), rel.id,
                                                       drop_on_failure=not alloc.in_place,
                                                       undo=lay.migrate_undo(rel.id)),
                          lay.database(schema), f"with release {rel.id}: {migration_names(new)}", phase="migrate"))
    recorded = o.schemas.get(schema)
    if alloc.migrate or recorded is None or not recorded.migrated:
        info = schema_info(d, schema, alloc.copy_from if alloc.new_database else copied_from)
        steps.append(Step(host.name, ADD if recorded is None or not recorded.fingerprint else CHANGE,
                          c.SchemaRecord(lay.schema_dir(schema), info), lay.schema_dir(schema) + "/schema.json",
                          f"schema version {schema}: database {lay.database(schema)}", phase="schema"))
    socket_unit, service_unit = lay.unit(rel.id, "socket"), lay.unit(rel.id, "service")
    env_json = json.dumps(env_fingerprints(d), sort_keys=True)
    config_same = not restart_reason(o.loaded, env_fingerprints(d), wanted_secrets or {})
    # Armed: the release is warm (or was stopped or pruned since, and its timer has not elapsed): cancelled at start.
    warm_timer = lay.warm_timer(rel.id) if o.unit_active(lay.warm_timer(rel.id)) else ""
    if build or warm_timer or not (o.unit_enabled(socket_unit) and o.unit_active(socket_unit)
                                   and o.unit_active(service_unit)):
        running = not build and o.unit_active(socket_unit) and o.unit_active(service_unit)
        restart = running and o.current != rel.id and not config_same
        reason = "new release" if build else "release on disk is not running"
        if running:
            reason = ("running with other env or secrets than now: restarted" if restart else
                      "warm: no start needed" if warm_timer else "running: no start needed")
        # A warm release runs with the env and secrets the current one was started with (state/warm.py):
        # what the host records of them stays true, so it is not written again.
        record = "" if running and not restart and config_same and o.current != rel.id else lay.loaded
        steps.append(Step(host.name, ADD, c.Start(
            socket_unit=socket_unit, service_unit=service_unit, socket=lay.socket(rel.id),
            health_url=d.state.site.health_url, health_host=health_host(d, host), release_dir=release_dir,
            release_id=rel.id, loaded=record, secrets=lay.secrets, env=env_json, warm_timer=warm_timer,
            restart=restart,
        ), f"{app}@{rel.id}", reason, phase="start"))
    elif o.current == rel.id:
        reason = restart_reason(o.loaded, env_fingerprints(d), wanted_secrets)
        if reason:
            steps.append(Step(host.name, CHANGE, c.Restart(
                service_unit=service_unit, socket=lay.socket(rel.id), health_url=d.state.site.health_url,
                health_host=health_host(d, host), release_id=rel.id, loaded=lay.loaded, secrets=lay.secrets,
                env=env_json,
            ), f"{app}@{rel.id}", reason, phase="start"))
    schema_last = recorded.last if recorded else None
    if last_after(o, schema, rel.id) != schema_last:
        steps.append(Step(host.name, CHANGE, c.Link(lay.last(schema), rel.id), lay.last(schema),
                          f"{schema_last or 'missing'} → {rel.id}", phase="switch"))
    upstream = upstream_file(d, rel.id)
    have_upstream = o.files.get(upstream.path)
    upstream_differs = have_upstream is None or have_upstream.content != upstream.content
    if o.current != rel.id or upstream_differs:
        target = lay.current_target(schema, rel.id)
        if o.current != rel.id:
            reason = f"{o.current_target or 'missing'} → {target}"
        else:
            reason = "nginx upstream differs from current (drift)"
        diff = file_diff(upstream.path, have_upstream.content if have_upstream else None, upstream.content)
        steps.append(Step(host.name, CHANGE, c.Switch(
            current=lay.current, target=target, served=lay.served(schema), upstream_path=upstream.path,
            upstream=upstream.content, history=lay.history, from_release=o.current or "none", release_id=rel.id,
            by=d.by,
        ), lay.current, reason, diff=diff if upstream_differs else "", phase="switch"))
    site = site_steps(d, host, o)  # the site (with HTTPS): after `current` exists, so nginx -t sees it whole
    if o.paths.get(NGINX_DEFAULT_SITE) or "nginx" not in o.packages:  # Debian's nginx package enables it
        # When the site's own file is written next, its test and reload cover the removal (one reload).
        site_written = any(isinstance(s.change, c.ConfigFile) and s.change.reload == "nginx" for s in site)
        steps.append(Step(host.name, REMOVE, c.RemoveFile(NGINX_DEFAULT_SITE, reload="" if site_written else "nginx"),
                          NGINX_DEFAULT_SITE, "Debian's welcome page would answer on the site's port", phase="site"))
    steps += site
    # Releases that run but are not the pinned one: stopped, or kept warm for a rollback (state/warm.py).
    steps += plan_warm_or_stop(d, host, o, rel.id, config_same)
    return steps


def plan_retention(d: Desired, host: HostSpec, o: HostObserved, alloc: Allocation, building: bool,
                   warm: frozenset[str] = frozenset()) -> list[Step]:
    """Prune releases beyond keep_releases per schema version, leftover builds, unused virtualenvs. A warm
    release (`warm`: running for a rollback) is kept."""
    steps: list[Step] = []
    lay, pinned = d.layout, d.release.id
    releases = dict(o.releases)
    if building:
        releases[pinned] = ReleaseOnDisk(pinned, alloc.schema, "ready", d.release.commit,
                                         d.release.requirements_hash)
    # As things stand after this run: the pinned release is current, and `last` of its schema version
    # names it when it is newly placed there.
    lasts = {n: s.last for n, s in o.schemas.items() if s.last}
    lasts[alloc.schema] = last_after(o, alloc.schema, pinned)
    protected = {pinned} | set(lasts.values()) | preview_releases(d) | set(warm)  # previews and warm ones run
    removed: set[str] = set()
    for number in sorted({r.schema for r in releases.values()}):
        in_schema = sorted(rid for rid, r in releases.items() if r.schema == number)
        excess = len(in_schema) - d.state.keep_releases
        candidates = [rid for rid in in_schema if rid not in protected and rid < pinned]
        candidates.sort(key=lambda rid: (releases[rid].status == "ready", rid))  # failed first, then oldest
        for rid in candidates[:max(0, excess)]:
            r = releases[rid]
            removed.add(rid)
            path = lay.release_dir(number, rid)
            # Its units are named (and checked, stopped, disabled on the host) only when systemd holds one of
            # them or one is enabled: a release kept stopped has none, and its prune is then one `rm` (two
            # systemctl calls fewer per pruned release; bench: deploy_kept_*).
            units = (lay.unit(rid, "socket"), lay.unit(rid, "service"))
            held = any(u in o.units for u in units)
            steps.append(Step(host.name, REMOVE, c.Prune(
                lay.root, path, release_id=rid, socket_unit=units[0] if held else "",
                service_unit=units[1] if held else "", by_id=lay.by_id_link(rid),
            ), path, f"{r.status}; keep_releases {d.state.keep_releases} in schema version {number}", phase="cleanup"))
    for path in o.building:
        if path != lay.building_dir(alloc.schema, pinned) or not building:
            steps.append(Step(host.name, REMOVE, c.Prune(lay.root, path), path, "left by a deploy that did not finish",
                              phase="cleanup"))
    used = {r.requirements_hash for rid, r in releases.items() if rid not in removed} | {d.release.requirements_hash}
    used |= preview_venvs(d)
    for venv in sorted(o.venvs - used):
        steps.append(Step(host.name, REMOVE, c.Prune(lay.root, lay.venv(venv)), lay.venv(venv),
                          "no release kept on disk uses it", phase="cleanup"))
    return steps


def write_freeze_steps(d: Desired, schema: int, seconds: float, until: str, after: str) -> list[Step]:
    """Freezing writes to schema version `schema`'s database (phases freeze, guard) and lifting it (thaw):
    for a schema change's copy, and for `pinned restore`."""
    lay, app, db = d.layout, d.state.app, d.db_host
    source = lay.database(schema)
    off = freeze_conf(d, refusing=False)
    steps: list[Step] = []
    for web in d.web_hosts:
        freeze = c.WriteFreeze(on=True, conf=lay.nginx_freeze, content=freeze_conf(d, refusing=True, seconds=seconds),
                               off_content=off, marker=lay.freeze_marker, undo=lay.lock_undo("write-freeze"))
        steps.append(Step(web.name, ADD, freeze, lay.nginx_freeze,
                          f"writes get 503 + Retry-After {until} (~{seconds:.0f} s)", phase="freeze"))
        steps.append(Step(web.name, REMOVE, replace(freeze, on=False, content=off), lay.nginx_freeze,
                          f"{after}: writes go through again", phase="thaw"))
    guard = c.DatabaseGuard(on=True, user=app, grant=lay.database_grant(schema), database=source,
                            undo=lay.lock_undo("db-freeze"))
    steps.append(Step(db.name, ADD, guard, source, "the app may only read it (a write that passes nginx fails "
                      "instead of being lost)", phase="guard"))
    steps.append(Step(db.name, REMOVE, replace(guard, on=False), source, f"writes back {after}", phase="thaw"))
    return steps


def plan_write_freeze(d: Desired, observed: dict[str, HostObserved], alloc: Allocation
                      ) -> tuple[list[Step], tuple[str, ...]]:
    """A schema change by copy keeps every write the site acknowledges: from the start of the copy to the
    switch, web hosts refuse writes (503 + Retry-After) and the app's accounts may only read the database
    being copied; both are lifted after the switch. Everything that can be done before (venv, upload,
    collectstatic) is done before the freeze."""
    if not (alloc.new_database and alloc.copy_from is not None):
        return [], ()
    source = d.layout.database(alloc.copy_from)
    size = observed[d.db_host.name].db_stats.get(source, (0, 0, 0))
    nbytes = size[2] if len(size) > 2 else 0
    seconds = freeze_estimate(nbytes)
    steps = write_freeze_steps(d, alloc.copy_from, seconds, "until the switch", "after the switch")
    warning = (f"write freeze: writes are refused (503 + Retry-After) for ~{seconds:.0f} s, from the copy of "
               f"{source} ({nbytes / 1e6:.1f} MB at ~{COPY_BYTES_PER_SECOND / 1e6:.0f} MB/s) to the switch "
               "(migrate, health check); reads go on. A failed step lifts it.")
    return steps, (warning,)


def plan_python(d: Desired, observed: dict[str, HostObserved]) -> tuple[str, ...]:
    """A web host whose python3 is older than the release's requirements need blocks the plan (one line
    each): its virtualenv could not be built (pip would end the deploy in a traceback)."""
    return tuple(line for web in d.web_hosts
                 if (line := python_too_old(web.name, observed[web.name].python, d.release.requirements,
                                            d.release.requires_python)))


from .plan_backups import plan_backups  # noqa: E402 (it builds on this module's Step and config_step)
from .plan_rollout import mixed_releases, plan_rollout, rollout_refusal  # noqa: E402 (likewise)
from .plan_tls import certificate_report, site_steps  # noqa: E402 (the same)
from .processes import plan_processes  # noqa: E402 (likewise)
from .warm import plan_warm_or_stop, warm_after  # noqa: E402 (what stays warm after a switch)


def plan(d: Desired, observed: dict[str, HostObserved]) -> Plan:
    """Diff the desired environment against every host's observed state."""
    hosts = tuple(h.name for h in d.hosts)
    alloc, refused = promote_allocation(d, observed, allocate_schema(d, observed))  # a preview's data kept?
    blocked = (refused + plan_python(d, observed) + (alloc.warnings if alloc.blocked else ())
               + missing_secrets(d, observed) + rollout_refusal(d, observed, alloc))
    if blocked:
        return Plan(d.env, (), (), hosts, blocked=blocked)
    wanted_secrets = wanted_secret_fingerprints(d, observed)
    source_migrations: tuple[str, ...] = ()
    copied_from = None  # what an existing schema version records (for a web host that lacks its schema.json)
    source_schema = alloc.schema if alloc.in_place else alloc.copy_from  # what the migration starts from
    for h in d.web_hosts:
        source = observed[h.name].schemas.get(source_schema) if source_schema is not None else None
        if source and source.migrations:
            source_migrations = source_migrations or source.migrations
        target = observed[h.name].schemas.get(alloc.schema)
        if target and target.migrated:
            copied_from = target.copied_from
    steps: list[Step] = []
    for host in d.hosts:
        steps += plan_system(d, host, observed[host.name])
    steps += plan_secrets(d, observed)
    db = d.db_host
    steps += plan_database(d, db, observed[db.name], alloc)
    freeze, freeze_warnings = plan_write_freeze(d, observed, alloc)
    steps += freeze
    for i, web in enumerate(d.web_hosts):
        o = observed[web.name]
        mine = plan_release(d, web, o, alloc, i == 0, source_migrations, copied_from, wanted_secrets)
        steps += mine + plan_processes(
            d, web, o, d.layout.release_dir(alloc.schema, d.release.id),
            starting=any(isinstance(s.change, c.Start) for s in mine),
            restart_reason=restart_reason(o.loaded, env_fingerprints(d), wanted_secrets)
            if o.current == d.release.id else "")
        config_same = not restart_reason(o.loaded, env_fingerprints(d), wanted_secrets)
        warm = frozenset(warm_after(d, o, d.release.id, config_same))
        steps += plan_retention(d, web, o, alloc, needs_build(o, d.release.id, alloc.schema), warm)
    steps += plan_backups(d, observed[db.name], alloc.schema)
    preview_steps, preview_warnings = plan_previews(d, observed, alloc.schema, alloc.current_schema, steps,
                                                    config_step, file_diff)
    steps += preview_steps
    shared_warnings = ()
    if d.state.shared and len(d.web_hosts) > 1:
        shared_warnings = (f"shared folders ({', '.join(d.state.shared_names)}) are local to each web host: a file "
                           "the app writes through one host is not on the others (uploads need shared storage, e.g. "
                           f"NFS mounted at {d.layout.shared_root}/<name> on every web host; pinned does not set it "
                           "up).",)
    steps, rollout_warnings = plan_rollout(d, observed, steps, alloc)
    order = {h: i for i, h in enumerate(hosts)}
    # Stable: planners' order within a phase, but a virtualenv's background build starts right after the packages
    # it needs (python3-venv), before the other packages' install and the rest of the host's system phase.
    def rank(s: Step) -> int:  # within a host's phase; a background install's wait comes first in its phase
        ranks = {c.Packages: 0, c.VenvStart: 1, c.PackagesStart: 2}
        return ranks.get(type(s.change), 3)
    steps.sort(key=lambda s: (order[s.host], PHASES.index(s.phase), rank(s)))
    certificates, tls_warnings = certificate_report(d, observed)
    return Plan(d.env, tuple(steps), alloc.warnings + freeze_warnings + shared_warnings + preview_warnings
                + tls_warnings + rollout_warnings + mixed_releases(d, observed), hosts, certificates=certificates)
