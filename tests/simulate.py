"""A pure simulator of plan steps: what a host's observed state becomes once a step has run.

It lets property tests check the plan without hosts (plan, apply, plan again must be empty), and the
differential test compares its prediction with what real deploys leave on a sandbox host. It reads the
same typed changes the operations are called with (state/changes.py): one rule per change type.
"""

from __future__ import annotations

import json
from dataclasses import replace

from pinned.state import changes as c
from pinned.state import previews
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
    generated = {k: f"generated-{k}-on-{host}" for k in ("DB_PASSWORD", "SECRET_KEY", *ch.generate) if k not in have}
    return replace(o, secrets=_secrets(ch.group, {**have, **generated}))


def secrets_read(o, ch: c.SecretsRead, d, host):
    return o


def secrets_copy(o, ch: c.SecretsCopy, d, host):
    # The db host's secrets as they are by now (its steps of the phase before have run in the simulation).
    return replace(o, secrets=_secrets(ch.group, _db_fingerprints.get(id(d), {})))


_db_fingerprints: dict = {}  # the db host's secrets in the plan being applied (apply_plan sets it)


def _previews(o: HostObserved) -> dict:
    pv = o.previews or {}
    return {"files": dict(pv.get("files") or {}), "units": {k: dict(v) for k, v in (pv.get("units") or {}).items()},
            "databases": frozenset(pv.get("databases") or ()), "users": dict(pv.get("users") or {})}


def database(o, ch: c.Database, d, host):
    if ch.database.startswith(f"{d.state.app}_pv_"):  # a preview's own copy (not a schema version's)
        pv = _previews(o)
        pv["databases"] = pv["databases"] | {ch.database}
        return replace(o, previews=pv)
    if ch.adopt_from:  # a promoted preview's database: its tables renamed into the new one, it is dropped
        pv = _previews(o)
        pv["databases"] = pv["databases"] - {ch.adopt_from}
        return replace(o, databases=o.databases | {ch.database}, previews=pv)
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
    if previews.name_of_path(d.state.app, ch.path):  # observed by glob, with the previews
        pv = _previews(o)
        pv["files"][ch.path] = FileOnHost(ch.content, ch.mode, ch.owner, ch.group)
        return replace(o, previews=pv)
    unit_files = o.unit_files
    if ch.path.startswith(f"/etc/systemd/system/{d.state.app}-"):  # a process's or a schedule's unit
        unit_files = unit_files | {ch.path.rsplit("/", 1)[1]}
    return replace(o, files={**o.files, ch.path: FileOnHost(ch.content, ch.mode, ch.owner, ch.group)},
                   unit_files=unit_files)


def remove_file(o, ch: c.RemoveFile, d, host):
    return replace(o, paths={**o.paths, ch.path: None})


def packages_start(o, ch: c.PackagesStart, d, host):
    return o  # a background install: the packages are there once their `packages` step waited for it


def venv_start(o, ch: c.VenvStart, d, host):
    return o  # a background build: the venv is ready only once its `venv` step waited for it


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


def process_start(o, ch: c.ProcessStart, d, host):
    return replace(o, units={**_units(o), **{u: {"active": "active", "enabled": True} for u in ch.units}})


def _removed(o, paths):
    names = {p.rsplit("/", 1)[1] for p in paths}
    return dict(files={**o.files, **{p: None for p in paths}}, unit_files=o.unit_files - names)


def process_stop(o, ch: c.ProcessStop, d, host):
    units = {k: v for k, v in _units(o).items() if k not in ch.units}
    return replace(o, units=units, **_removed(o, ch.remove))


def schedule_timer(o, ch: c.ScheduleTimer, d, host):
    units = _units(o)
    units[ch.timer] = {"active": "active" if ch.enable else "inactive", "enabled": ch.enable}
    return replace(o, units=units, **_removed(o, ch.remove))


def watch(o, ch: c.Watch, d, host):
    return o  # a watch that passes changes nothing (one that fails ends the run: not simulated)


def tls_files(o, ch: c.TlsFiles, d, host):
    local = d.tls
    info = {"subject": local.info.subject, "issuer": local.info.issuer, "names": list(local.info.names),
            "not_after": local.info.not_after, "expires": local.info.expires, "serial": local.info.serial}
    return replace(o, files={**o.files, ch.certificate_path: FileOnHost(ch.certificate, "0644", "root", "root")},
                   certificates={**o.certificates, ch.certificate_path: info},
                   tls_keys={**o.tls_keys, ch.key_path: {"mode": "0600", "owner": "root", "group": "root",
                                                         "public_key": local.public_key}})


def certificate(o, ch: c.Certificate, d, host):
    """certbot certonly: a lineage for the domains, 90 days from the host's clock, through this directory."""
    lay = Layout(d.state.app)
    expires = o.now + 90 * 86400
    info = {"subject": f"CN={ch.domains[0]}", "issuer": "CN=simulated ACME CA", "names": list(ch.domains),
            "not_after": "in 90 days", "expires": expires, "serial": f"{expires:x}"}
    renewal = f"server = {ch.directory}\nauthenticator = webroot\nrenew_hook = systemctl reload nginx\n"
    return replace(o, certificates={**o.certificates, lay.acme_certificate: info},
                   files={**o.files, lay.acme_renewal: FileOnHost(renewal, "0644", "root", "root")})


def tls_remove(o, ch: c.TlsRemove, d, host):
    lay = Layout(d.state.app)
    files = {**o.files, **{p: None for p in ch.paths}}
    certificates = {**o.certificates, **{p: None for p in ch.paths}}
    if ch.cert_name:
        files[lay.acme_renewal] = None
        certificates[lay.acme_certificate] = None
    return replace(o, files=files, certificates=certificates,
                   tls_keys={**o.tls_keys, **{p: None for p in ch.paths if p in o.tls_keys}})


def preview_account(o, ch: c.PreviewAccount, d, host):
    pv = _previews(o)
    said = "ALL PRIVILEGES" if ch.privileges == "ALL" else "SELECT"
    pv["users"][f"{ch.user}@{ch.host}"] = [_grant_line(said, ch.database, ch.user, ch.host)]
    return replace(o, previews=pv)


def preview_migrate(o, ch: c.PreviewMigrate, d, host):
    return o  # the database's content


def preview_start(o, ch: c.PreviewStart, d, host):
    pv = _previews(o)
    pv["units"][ch.socket_unit] = {"active": "active", "enabled": True}
    pv["units"][ch.service_unit] = {"active": "active", "enabled": False}
    return replace(o, previews=pv)


def preview_remove(o, ch: c.PreviewRemove, d, host):
    pv = _previews(o)
    for u in (ch.socket_unit, ch.service_unit):
        pv["units"].pop(u, None)
    for path in ch.files:
        pv["files"].pop(path, None)
    return replace(o, previews=pv)


def preview_drop(o, ch: c.PreviewDrop, d, host):
    pv = _previews(o)
    for account in ch.accounts:
        pv["users"].pop(account, None)
    pv["databases"] = pv["databases"] - {ch.database}
    return replace(o, previews=pv)


RULES = {
    c.Packages: packages, c.PackagesStart: packages_start, c.Service: service, c.User: user,
    c.Directory: directory, c.Secrets: secrets,
    c.SecretsRead: secrets_read, c.SecretsCopy: secrets_copy, c.Database: database, c.DbUser: db_user,
    c.ConfigFile: config_file, c.RemoveFile: remove_file, c.VenvStart: venv_start, c.Venv: venv, c.Build: build,
    c.Migrate: migrate,
    c.SchemaRecord: schema_record, c.Start: start, c.Restart: restart, c.Link: link, c.Switch: switch, c.Stop: stop,
    c.Warm: warm,
    c.Prune: prune,
    c.WriteFreeze: write_freeze, c.DatabaseGuard: database_guard,
    c.BackupTimer: backup_timer, c.Watch: watch,
    c.TlsFiles: tls_files, c.Certificate: certificate, c.TlsRemove: tls_remove,
    c.PreviewAccount: preview_account, c.PreviewMigrate: preview_migrate, c.PreviewStart: preview_start,
    c.PreviewRemove: preview_remove, c.PreviewDrop: preview_drop,
    c.ProcessStart: process_start, c.ProcessStop: process_stop, c.ScheduleTimer: schedule_timer,
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
