"""The plan: the minimal steps that take the observed hosts to the desired state (pure and deterministic).

`plan()` composes small planners, one per concern. Each returns `Step`s: plain frozen data that the
renderers print and deploy.py maps, one step to one operation. Nothing here touches a host.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .desired import (
    Desired,
    HostSpec,
    ManagedFile,
    db_user_host,
    health_host,
    release_metadata,
    settings_module,
    site_files,
    upstream_file,
    user_files,
)
from .layout import NGINX_DEFAULT_SITE
from .observed import HostObserved

ADD, CHANGE, REMOVE = "add", "change", "remove"
SYMBOL = {ADD: "+", CHANGE: "~", REMOVE: "-"}


@dataclass(frozen=True)
class Step:
    host: str
    action: str  # add / change / remove
    kind: str  # see STEP_KINDS
    target: str
    reason: str
    details: dict = field(default_factory=dict, compare=False, hash=False)
    diff: str = ""  # unified diff of a config file
    sensitive: bool = False  # the target's value is a secret: never shown


# Every kind of step, documented (the README's table is generated from this).
STEP_KINDS = {
    "packages": "install missing Debian packages",
    "service": "start/enable a system service (nginx, MariaDB)",
    "user": "the app's system user and group, or an extra user with its SSH keys",
    "directory": "a folder of the app root, with owner and mode",
    "secrets": "generate the secrets file on the server (database password, SECRET_KEY); never shown",
    "database": "create the schema version's database",
    "db-user": "the app's database account and its privileges on `<app>\\_v%` only",
    "config": "write a managed config file (unit templates, nginx site, sudo rules); shows a diff",
    "nginx-default-site": "remove Debian's default nginx site (it would answer for the app's port)",
    "venv": "build a shared virtualenv for a requirements hash",
    "release": "upload and build a release (code, settings module, collectstatic) into versions/<N>/<id>",
    "migrate": "run Django's migrations on a schema version's database, once",
    "app": "start a release's socket and service, health-checked on its own socket",
    "link": "switch a schema version's `last` link (atomic: ln -s + mv -T)",
    "switch": "switch `current` and nginx's upstream to a release (atomic), reload nginx, record history",
    "stop": "stop and disable a release's service that is no longer current",
}


@dataclass(frozen=True)
class Plan:
    env: str
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    def for_host(self, host: str) -> list[Step]:
        return [s for s in self.steps if s.host == host]

    @property
    def summary(self) -> dict[str, int]:
        return {a: sum(1 for s in self.steps if s.action == a) for a in (ADD, CHANGE, REMOVE)}

    @property
    def empty(self) -> bool:
        return not self.steps


# ------------------------------------------------------------------ helpers


def file_diff(path: str, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=path if old is not None else "/dev/null", tofile=path,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def config_step(host: str, observed: HostObserved, wanted: ManagedFile, **details) -> Step | None:
    have = observed.files.get(wanted.path)
    meta = {"path": wanted.path, "content": wanted.content, "mode": wanted.mode, "owner": wanted.owner,
            "group": wanted.group, "label": wanted.label, **details}
    if have is None:
        return Step(host, ADD, "config", wanted.path, f"{wanted.label}: missing", meta,
                    diff=file_diff(wanted.path, None, wanted.content))
    if have.content != wanted.content:
        return Step(host, CHANGE, "config", wanted.path, f"{wanted.label}: content differs (drift)", meta,
                    diff=file_diff(wanted.path, have.content, wanted.content))
    if (have.mode, have.owner, have.group) != (wanted.mode, wanted.owner, wanted.group):
        return Step(host, CHANGE, "config", wanted.path,
                    f"{wanted.label}: {have.owner}:{have.group} {have.mode} should be "
                    f"{wanted.owner}:{wanted.group} {wanted.mode}", meta)
    return None


# ------------------------------------------------------------------ planners, one per concern


def plan_system(d: Desired, host: HostSpec, o: HostObserved) -> list[Step]:
    steps: list[Step] = []
    app, lay = d.state.app, d.layout
    missing = [p for p in d.packages() if p not in o.packages]
    if missing:
        steps.append(Step(host.name, ADD, "packages", " ".join(missing), "not installed",
                          {"packages": missing}))
    for unit, role in (("nginx.service", "web"), ("mariadb.service", "db")):
        if role in host.roles and not (o.unit_active(unit) and o.unit_enabled(unit)) and not missing:
            state = o.units.get(unit, {})
            steps.append(Step(host.name, CHANGE, "service", unit,
                              f"{state.get('active', 'unknown')}, enabled={bool(state.get('enabled'))}",
                              {"unit": unit}))
    if app not in o.users:
        steps.append(Step(host.name, ADD, "user", app, "the app's system user and group",
                          {"name": app, "system": True, "home": lay.root}))
    for user in d.state.users:
        keys = "".join(k + "\n" for k in user.ssh_keys)
        have = o.users.get(user.name)
        if have is None:
            steps.append(Step(host.name, ADD, "user", user.name, "extra user from the state file",
                              {"name": user.name, "system": False, "keys": list(user.ssh_keys)}))
        elif (have.get("authorized_keys") or "") != keys and (user.ssh_keys or have.get("authorized_keys")):
            steps.append(Step(host.name, CHANGE, "user", user.name, "SSH keys differ from the state file",
                              {"name": user.name, "system": False, "keys": list(user.ssh_keys)}))
    for wanted in user_files(d):
        step = config_step(host.name, o, wanted)
        if step:
            steps.append(step)
    if "web" in host.roles:
        for path in (lay.root, lay.versions, lay.venvs, lay.by_id):
            have = o.paths.get(path)
            want = {"type": "dir", "mode": "0755", "owner": "root", "group": "root"}
            if have is None:
                steps.append(Step(host.name, ADD, "directory", path, "missing", {"path": path}))
            elif {k: have.get(k) for k in want} != want:
                steps.append(Step(host.name, CHANGE, "directory", path,
                                  f"{have.get('owner')}:{have.get('group')} {have.get('mode')} should be "
                                  "root:root 0755 (the app user must not write its code)", {"path": path}))
    sec = o.secrets
    if not sec or not {"DB_PASSWORD", "SECRET_KEY"} <= set(sec.get("keys", ())):
        steps.append(Step(host.name, ADD, "secrets", lay.secrets, "generated on the server",
                          {"path": lay.secrets}, sensitive=True))
    elif (sec.get("mode"), sec.get("owner"), sec.get("group")) != ("0640", "root", app):
        steps.append(Step(host.name, CHANGE, "secrets", lay.secrets,
                          f"{sec.get('owner')}:{sec.get('group')} {sec.get('mode')} should be root:{app} 0640",
                          {"path": lay.secrets}, sensitive=True))
    return steps


def plan_database(d: Desired, host: HostSpec, o: HostObserved, schema: int) -> list[Step]:
    steps: list[Step] = []
    app, lay = d.state.app, d.layout
    database = lay.database(schema)
    if database not in o.databases:
        steps.append(Step(host.name, ADD, "database", database, f"schema version {schema}",
                          {"database": database}))
    for web in d.web_hosts:
        account = f"{app}@{db_user_host(d, web)}"
        grants = o.db_users.get(account)
        pattern = f"ON `{lay.database_pattern}`.*"
        if grants is None:
            steps.append(Step(host.name, ADD, "db-user", account,
                              f"privileges on {lay.database_pattern} only, for {web.name}",
                              {"user": app, "host": db_user_host(d, web)}))
        elif not any("ALL PRIVILEGES" in g and pattern in g for g in grants) or len(grants) != 1:
            steps.append(Step(host.name, CHANGE, "db-user", account,
                              f"privileges differ: should be ALL on {lay.database_pattern} only",
                              {"user": app, "host": db_user_host(d, web), "revoke": True}))
    return steps


def allocate_schema(d: Desired, observed: dict[str, HostObserved]) -> tuple[int, bool, list[str]]:
    """The schema version of the pinned release, whether it needs creating, and warnings."""
    rel = d.release
    webs = [observed[h.name] for h in d.web_hosts]
    for o in webs:
        if rel.id in o.releases:
            return o.releases[rel.id].schema, False, []
    schemas: dict[int, object] = {}
    for o in webs:
        schemas.update(o.schemas)
    current_schema = None
    for o in webs:
        if o.current and o.current in o.releases:
            current_schema = o.releases[o.current].schema
            break
    if current_schema is not None and getattr(schemas.get(current_schema), "fingerprint", None) == rel.fingerprint:
        return current_schema, False, []
    for number in sorted(schemas, reverse=True):
        if getattr(schemas[number], "fingerprint", None) == rel.fingerprint:
            return number, False, []
    if not schemas or all(getattr(s, "fingerprint", None) is None for s in schemas.values()):
        return 0, True, []
    number = max(schemas) + 1
    return number, True, [
        f"release {rel.id} changes the database schema: schema version {number} would be a copy of "
        f"schema {current_schema}, which this version of pinned does not do yet. Nothing will be changed."
    ]


def plan_release(d: Desired, host: HostSpec, o: HostObserved, schema: int, first_web: bool,
                 schema_is_new: bool) -> list[Step]:
    steps: list[Step] = []
    rel, lay, app = d.release, d.layout, d.state.app
    release_dir = lay.release_dir(schema, rel.id)
    on_disk = o.releases.get(rel.id)
    build = on_disk is None or on_disk.status != "ready"
    if build and rel.requirements_hash not in o.venvs:
        steps.append(Step(host.name, ADD, "venv", lay.venv(rel.requirements_hash),
                          "no virtualenv for these requirements yet",
                          {"path": lay.venv(rel.requirements_hash)}))
    for wanted in site_files(d):
        if wanted.path.startswith("/etc/systemd/"):
            step = config_step(host.name, o, wanted, reload="systemd")
            if step:
                steps.append(step)
    if build:
        reason = "not on disk" if on_disk is None else f"on disk but {on_disk.status}"
        steps.append(Step(host.name, ADD, "release", release_dir, f"{reason}: build from {rel.commit[:12]}", {
            "schema": schema, "release_id": rel.id, "commit": rel.commit,
            "venv": lay.venv(rel.requirements_hash),
            "settings": settings_module(d, host, schema, release_dir),
            "metadata": release_metadata(d, schema),
        }))
    schema_info = o.schemas.get(schema)
    if first_web and (schema_is_new or schema_info is None or not schema_info.migrated):
        migrations = ", ".join(p.split("/")[-1].removesuffix(".py") for p in rel.migrations) or "none"
        steps.append(Step(host.name, CHANGE, "migrate", lay.database(schema),
                          f"with release {rel.id}: {migrations}",
                          {"schema": schema, "release_dir": release_dir, "database": lay.database(schema),
                           "fingerprint": rel.fingerprint}))
    socket, service = lay.unit(rel.id, "socket"), lay.unit(rel.id, "service")
    if build or not (o.unit_enabled(socket) and o.unit_active(socket) and o.unit_active(service)):
        steps.append(Step(host.name, ADD, "app", f"{app}@{rel.id}",
                          "new release" if build else "release on disk is not running",
                          {"release_id": rel.id, "health_url": d.state.site.health_url,
                           "health_host": health_host(d, host), "socket": lay.socket(rel.id)}))
    schema_last = schema_info.last if schema_info else None
    last_valid = schema_last in o.releases and o.releases[schema_last].schema == schema
    if (build and on_disk is None and schema_last != rel.id) or not last_valid:
        steps.append(Step(host.name, CHANGE, "link", lay.last(schema),
                          f"{schema_last or 'missing'} → {rel.id}",
                          {"path": lay.last(schema), "target": rel.id}))
    upstream = upstream_file(d, rel.id)
    have_upstream = o.files.get(upstream.path)
    if o.current != rel.id or have_upstream is None or have_upstream.content != upstream.content:
        if o.current != rel.id:
            reason = f"{o.current_target or 'missing'} → versions/{schema}/{rel.id}"
        else:
            reason = "nginx upstream differs from current (drift)"
        steps.append(Step(host.name, CHANGE, "switch", lay.current, reason, {
            "target": f"versions/{schema}/{rel.id}", "release_id": rel.id, "from": o.current or "",
            "upstream": upstream.content, "upstream_path": upstream.path,
        }, diff=file_diff(upstream.path, have_upstream.content if have_upstream else None, upstream.content)
            if have_upstream is None or have_upstream.content != upstream.content else ""))
    if o.paths.get(NGINX_DEFAULT_SITE) or "nginx" not in o.packages:  # Debian's nginx package enables it
        steps.append(Step(host.name, REMOVE, "nginx-default-site", NGINX_DEFAULT_SITE,
                          "Debian's welcome page would answer on the site's port", {"path": NGINX_DEFAULT_SITE}))
    for wanted in site_files(d):
        if wanted.path.startswith("/etc/nginx/"):
            step = config_step(host.name, o, wanted, reload="nginx")
            if step:
                steps.append(step)
    running = sorted({u.split("@", 1)[1].rsplit(".", 1)[0] for u, st in o.units.items()
                      if u.startswith(f"{app}@") and (st.get("active") in ("active", "activating")
                                                      or st.get("enabled"))})
    for other in running:
        if other != rel.id:
            steps.append(Step(host.name, REMOVE, "stop", f"{app}@{other}", "no longer current",
                              {"release_id": other}))
    return steps


def plan(d: Desired, observed: dict[str, HostObserved]) -> Plan:
    """Diff the desired environment against every host's observed state."""
    schema, schema_is_new, warnings = allocate_schema(d, observed)
    if warnings:
        return Plan(d.env, (), tuple(warnings), tuple(h.name for h in d.hosts))
    steps: list[Step] = []
    for host in d.hosts:
        o = observed[host.name]
        steps += plan_system(d, host, o)
        if "db" in host.roles:
            steps += plan_database(d, host, o, schema)
        if "web" in host.roles:
            steps += plan_release(d, host, o, schema, host == d.web_hosts[0], schema_is_new)
    return Plan(d.env, tuple(steps), tuple(warnings), tuple(h.name for h in d.hosts))
