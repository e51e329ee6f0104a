"""A pure simulator of plan steps: what a host's observed state becomes once a step has run.

It lets property tests check the plan without hosts (plan, apply, plan again must be empty), and the
differential test compares its prediction with what real deploys leave on a sandbox host. It reads the
same typed changes the operations are called with (state/changes.py): one rule per change type.
"""

from __future__ import annotations

import json
from dataclasses import replace

from pinned.state import changes as c
from pinned.state.desired import Desired
from pinned.state.layout import NGINX_DEFAULT_SITE, Layout
from pinned.state.observed import FileOnHost, HostObserved, ReleaseOnDisk, SchemaOnDisk
from pinned.state.plan import PHASES, Plan, Step


def _units(o: HostObserved) -> dict:
    return {k: dict(v) for k, v in o.units.items()}


def packages(o: HostObserved, ch: c.Packages, d: Desired, host: str) -> HostObserved:
    units, paths = _units(o), dict(o.paths)
    if "nginx" in ch.packages:
        paths[NGINX_DEFAULT_SITE] = {"type": "link", "mode": "0777", "owner": "root", "group": "root"}
    for pkg, unit in (("nginx", "nginx.service"), ("mariadb-server", "mariadb.service")):
        if pkg in ch.packages:
            units[unit] = {"active": "active", "enabled": True}
    return replace(o, reachable_python=True, packages=o.packages | set(ch.packages), paths=paths, units=units,
                   mysql_running=o.mysql_running or "mariadb-server" in ch.packages)


def service(o, ch: c.Service, d, host):
    units = _units(o)
    units[ch.unit] = {"active": "active", "enabled": True}
    return replace(o, units=units, mysql_running=o.mysql_running or ch.unit == "mariadb.service")


def user(o, ch: c.User, d, host):
    keys = "".join(k + "\n" for k in ch.keys) or None
    return replace(o, users={**o.users, ch.login: {"home": ch.home, "authorized_keys": keys}})


def directory(o, ch: c.Directory, d, host):
    return replace(o, paths={**o.paths, ch.path: {"type": "dir", "mode": ch.mode, "owner": ch.owner,
                                                  "group": ch.group}})


def _secrets(group: str, fingerprints: dict) -> dict:
    """A secrets file holding these names (fingerprints of their values); its digest follows its content."""
    return {"mode": "0640", "owner": "root", "group": group, "keys": sorted(fingerprints),
            "digest": "secrets:" + ",".join(f"{k}={v}" for k, v in sorted(fingerprints.items())),
            "fingerprints": dict(fingerprints)}


def secrets(o, ch: c.Secrets, d, host):
    have = {k: v for k, v in o.secret_fingerprints.items() if k not in ch.drop}
    generated = {k: f"generated-{k}-on-{host}" for k in ("DB_PASSWORD", "SECRET_KEY") if k not in have}
    return replace(o, secrets=_secrets(ch.group, {**have, **generated}))


def secrets_read(o, ch: c.SecretsRead, d, host):
    return o


def secrets_copy(o, ch: c.SecretsCopy, d, host):
    # The db host's secrets as they are by now (its steps of the phase before have run in the simulation).
    return replace(o, secrets=_secrets(ch.group, _db_fingerprints.get(id(d), {})))


_db_fingerprints: dict = {}  # the db host's secrets in the plan being applied (apply_plan sets it)


def database(o, ch: c.Database, d, host):
    return replace(o, databases=o.databases | {ch.database},
                   db_stats={**o.db_stats, ch.database: o.db_stats.get(ch.copy_from, (0, 0))})


def _grant_line(privileges: str, database: str, user: str, host: str) -> str:
    return f"GRANT {privileges} ON `{database}`.* TO `{user}`@`{host}`"


def _without(lines, database: str) -> list[str]:
    return [line for line in lines if f" ON `{database}`.* " not in line]


def db_user(o, ch: c.DbUser, d, host):
    account = f"{ch.user}@{ch.host}"
    lines = [] if "*" in ch.revoke else list(o.db_users.get(account, []))
    for database in ch.revoke:
        lines = _without(lines, database)
    for database in ch.grant:
        lines = _without(lines, database) + [_grant_line("ALL PRIVILEGES", database, ch.user, ch.host)]
    return replace(o, db_users={**o.db_users, account: sorted(lines)})


def write_freeze(o, ch: c.WriteFreeze, d, host):
    return replace(o, files={**o.files, ch.conf: FileOnHost(ch.content, "0644", "root", "root")})


def database_guard(o, ch: c.DatabaseGuard, d, host):
    users = {}
    for account, lines in o.db_users.items():
        user, _, at = account.partition("@")
        if user == ch.user:
            lines = _without(lines, ch.grant) + [_grant_line("ALL PRIVILEGES" if not ch.on else "SELECT", ch.grant,
                                                             user, at)]
        users[account] = sorted(lines)
    return replace(o, db_users=users)


def config_file(o, ch: c.ConfigFile, d, host):
    return replace(o, files={**o.files, ch.path: FileOnHost(ch.content, ch.mode, ch.owner, ch.group)})


def remove_file(o, ch: c.RemoveFile, d, host):
    return replace(o, paths={**o.paths, ch.path: None})


def venv(o, ch: c.Venv, d, host):
    return replace(o, venvs=o.venvs | {ch.path.rsplit("/", 1)[1]})


def build(o, ch: c.Build, d, host):
    meta = json.loads(ch.metadata)
    schema = meta["schema"]
    rel = ReleaseOnDisk(id=ch.release_id, schema=schema, status="ready", commit=meta["commit"],
                        requirements_hash=meta["requirements_hash"])
    schemas = dict(o.schemas)
    schemas.setdefault(schema, SchemaOnDisk(schema, None, None, False, None, None))
    return replace(o, releases={**o.releases, rel.id: rel}, schemas=schemas,
                   by_id={**o.by_id, rel.id: ch.by_id_target})


def migrate(o, ch: c.Migrate, d, host):
    return o  # the database's content; what the web hosts record is the `schema` step


def schema_record(o, ch: c.SchemaRecord, d, host):
    info = json.loads(ch.info)
    old = o.schemas.get(info["schema"])
    schema = SchemaOnDisk(info["schema"], info["fingerprint"], info["database"], True, info["copied_from"],
                          old.last if old else None, tuple(info["migrations"]), old.served if old else False)
    return replace(o, schemas={**o.schemas, info["schema"]: schema})


def _loaded(o: HostObserved, env: str) -> dict:
    return {"env": json.loads(env), "secrets": o.secret_fingerprints}


def start(o, ch: c.Start, d, host):
    units = _units(o)
    if ch.warm_timer:
        units.pop(ch.warm_timer, None)
    units[ch.socket_unit] = {"active": "active", "enabled": True}
    units[ch.service_unit] = {"active": "active", "enabled": False}
    return replace(o, units=units, loaded=_loaded(o, ch.env) if ch.loaded else o.loaded)


def restart(o, ch: c.Restart, d, host):
    return replace(o, loaded=_loaded(o, ch.env))


def link(o, ch: c.Link, d, host):
    lay = Layout(d.state.app)
    if ch.path.startswith(lay.by_id + "/"):
        return replace(o, by_id={**o.by_id, ch.path.rsplit("/", 1)[1]: ch.target})
    number = int(ch.path.rstrip("/").split("/")[-2])
    old = o.schemas.get(number) or SchemaOnDisk(number, None, None, False, None, None)
    return replace(o, schemas={**o.schemas, number: replace(old, last=ch.target)})


def switch(o, ch: c.Switch, d, host):
    number = int(ch.target.split("/")[1])
    schemas = dict(o.schemas)
    if number in schemas:
        schemas[number] = replace(schemas[number], served=True)
    return replace(o, current=ch.release_id, current_target=ch.target, schemas=schemas,
                   files={**o.files, ch.upstream_path: FileOnHost(ch.upstream, "0644", "root", "root")})


def stop(o, ch: c.Stop, d, host):
    units = _units(o)
    units.pop(ch.socket_unit, None)
    units.pop(ch.service_unit, None)
    return replace(o, units=units)


def warm(o, ch: c.Warm, d, host):
    units = _units(o)
    units[ch.timer] = {"active": "active", "enabled": False}
    return replace(o, units=units)


def prune(o, ch: c.Prune, d, host):
    if ch.release_id:
        units = _units(o)
        units.pop(ch.socket_unit, None)
        units.pop(ch.service_unit, None)
        releases = {k: v for k, v in o.releases.items() if k != ch.release_id}
        by_id = {k: v for k, v in o.by_id.items() if k != ch.release_id}
        return replace(o, releases=releases, by_id=by_id, units=units)
    if ch.path.startswith(Layout(d.state.app).venvs + "/"):
        return replace(o, venvs=o.venvs - {ch.path.rsplit("/", 1)[1]})
    return replace(o, building=tuple(b for b in o.building if b != ch.path))


def backup_timer(o, ch: c.BackupTimer, d, host):
    units = _units(o)
    if ch.enable:
        units[ch.timer] = {"active": "active", "enabled": True}
        return replace(o, units=units)
    units[ch.timer] = {"active": "inactive", "enabled": False}
    return replace(o, units=units, files={**o.files, **{path: None for path in ch.remove}})


def watch(o, ch: c.Watch, d, host):
    return o  # a watch that passes changes nothing (one that fails ends the run: not simulated)


RULES = {
    c.Packages: packages, c.Service: service, c.User: user, c.Directory: directory, c.Secrets: secrets,
    c.SecretsRead: secrets_read, c.SecretsCopy: secrets_copy, c.Database: database, c.DbUser: db_user,
    c.ConfigFile: config_file, c.RemoveFile: remove_file, c.Venv: venv, c.Build: build, c.Migrate: migrate,
    c.SchemaRecord: schema_record, c.Start: start, c.Restart: restart, c.Link: link, c.Switch: switch, c.Stop: stop,
    c.Warm: warm,
    c.Prune: prune,
    c.WriteFreeze: write_freeze, c.DatabaseGuard: database_guard,
    c.BackupTimer: backup_timer, c.Watch: watch,
}


def apply_step(o: HostObserved, step: Step, d: Desired) -> HostObserved:
    rule = RULES.get(type(step.change))
    if rule is None:
        raise AssertionError(f"the simulator does not know step kind {step.kind!r}")
    return rule(o, step.change, d, step.host)


def apply_plan(plan: Plan, observed: dict[str, HostObserved], d: Desired) -> dict[str, HostObserved]:
    result = dict(observed)
    # The plan's steps run phase by phase on every host (deploy.py), so a web host's copy of the secrets
    # (phase share) sees the db host's secrets as its phase secrets left them.
    order = {phase: i for i, phase in enumerate(PHASES)}
    for step in sorted(plan.steps, key=lambda s: order[s.phase]):
        if step.kind == "secrets-copy":
            _db_fingerprints[id(d)] = result[d.db_host.name].secret_fingerprints
        result[step.host] = apply_step(result[step.host], step, d)
    _db_fingerprints.pop(id(d), None)
    return result
