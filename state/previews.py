"""Previews (the state file's `previews:`): a release running beside `current` on the web hosts, at its own
address (a port, or `<name>.<server_name>`), with its own units, nginx server and database account (pure).

* Build: the same Build step as the pinned release (a release on disk is never rebuilt). A preview with the
  schema of the pinned release is built in that schema version and uses its database through an account of
  its own (`<app>_pv_<name>`: SELECT only, or ALL with `database: write`). A preview with other migrations is
  built in a schema version of its own (a number no database has yet: pinning it later makes that version's
  database as any schema change does, a fresh copy, and does not rebuild it) and gets its own database,
  `<app>_pv_<name>`, a copy of the current one, migrated through its account.
* Units `<app>-pv-<name>.socket/.service` (not `<app>@…`: the release switch and stop never see them), an
  nginx server of its own (its upstream is its socket; the site's upstream and `current` are not touched).
* Removed from the state file: a `preview-remove` step on each web host, a `preview-drop` on the db host.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import changes as c
from .desired import (
    Desired,
    HostSpec,
    ManagedFile,
    allowed_hosts,
    db_user_host,
    health_host,
    release_metadata,
    render,
    runtime_module,
    settings_module,
)
from .layout import SETTINGS_MODULE
from .observed import HostObserved
from .source import Release, archive

ADD, CHANGE, REMOVE = "add", "change", "remove"
SECRET_PREFIX = "PINNED_PREVIEW_"


# ------------------------------------------------------------------ names


def unit(app: str, name: str, kind: str) -> str:
    return f"{app}-pv-{name}.{kind}"


def unit_file(app: str, name: str, kind: str) -> str:
    return f"/etc/systemd/system/{unit(app, name, kind)}"


def nginx_conf(app: str, name: str) -> str:
    """After the site's own `pinned-<app>.conf` in nginx's (sorted) include: a site with server names keeps
    being the port's implicit default server, never a `host: true` preview on the same port."""
    return f"/etc/nginx/conf.d/pinned-{app}.pv-{name}.conf"


def socket(app: str, name: str) -> str:
    return f"/run/pinned-{app}/pv-{name}.sock"


def db_name(app: str, name: str) -> str:
    """The preview's database account, and its own database when it has one (`-` → `_`: names have no `_`)."""
    return f"{app}_pv_{name.replace('-', '_')}"


def password_key(name: str) -> str:
    return f"{SECRET_PREFIX}{name.upper().replace('-', '_')}_DB_PASSWORD"


def name_of_path(app: str, path: str) -> str | None:
    """The preview a unit file or nginx server of the app belongs to (None: not a preview's)."""
    base = Path(path).name
    for prefix, suffixes in ((f"{app}-pv-", (".socket", ".service")), (f"pinned-{app}.pv-", (".conf",))):
        for suffix in suffixes:
            if base.startswith(prefix) and base.endswith(suffix):
                return base[len(prefix):-len(suffix)]
    return None


def preview_request(d: Desired) -> dict:
    """What the observe fact asks about previews (every preview of the app on the host, declared or not)."""
    app = d.state.app
    return {"globs": [f"/etc/systemd/system/{app}-pv-*.socket", f"/etc/systemd/system/{app}-pv-*.service",
                      f"/etc/nginx/conf.d/pinned-{app}.pv-*.conf"],
            "unit_prefix": f"{app}-pv-", "db_regex": f"^{app}_pv_[a-z0-9_]+$"}


def preview_archives(repo, d: Desired, cache) -> dict:
    """The previews' releases as whole archives (transfers key `release:<id>`), made only for releases other
    than the pinned one."""
    out = {}
    for rel in d.previews.values():
        if rel.id != d.release.id and f"release:{rel.id}" not in out:
            path = archive(repo, rel, d.state, cache)
            out[f"release:{rel.id}"] = {"archive": str(path), "bytes": path.stat().st_size}
    return out


def address(d: Desired, name: str, host: HostSpec | None = None) -> str:
    """The preview's URL (with a web host's address when the site has no server name)."""
    s = d.state
    p = s.previews[name]
    if p.host:
        port = "" if s.site.port == 80 else f":{s.site.port}"
        return f"http://{name}.{s.site.server_names[0]}{port}/"
    where = s.site.server_names[0] if s.site.server_names else (host.address if host else "<web host>")
    return f"http://{where}:{p.port}/"


# ------------------------------------------------------------------ where each preview lives


def _schemas_known(d: Desired, observed: dict[str, HostObserved]) -> set[int]:
    lay = d.layout
    numbers = {n for w in d.web_hosts for n in observed[w.name].schemas}
    numbers |= {n for n in map(lay.schema_of_database, observed[d.db_host.name].databases) if n is not None}
    numbers |= {r.schema for w in d.web_hosts for r in observed[w.name].releases.values()}
    return numbers


def placements(d: Desired, observed: dict[str, HostObserved], schema: int, current_schema: int | None
               ) -> dict[str, tuple[int, bool]]:
    """Each preview's (schema version it is built in, whether it has its own database). `schema`: the pinned
    release's after this run."""
    out: dict[str, tuple[int, bool]] = {}
    webs = [observed[w.name] for w in d.web_hosts]
    following = max(_schemas_known(d, observed) | {schema}) + 1
    given: dict[str, int] = {}  # a release with other migrations: one new number per release
    for name in sorted(d.previews):
        rel = d.previews[name]
        shared = rel.fingerprint == d.release.fingerprint
        on_disk = next((o.releases[rel.id].schema for o in webs if rel.id in o.releases
                        and o.releases[rel.id].status == "ready"), None)
        if rel.id == d.release.id:
            number = schema
        elif on_disk is not None:
            number = on_disk
        elif shared:
            number = schema
        elif rel.id in given:
            number = given[rel.id]
        else:
            number = given[rel.id] = following
            following += 1
        out[name] = (number, not shared)
    return out


def preview_secret_names(d: Desired) -> tuple[str, ...]:
    return tuple(password_key(n) for n in sorted(d.state.previews))


# ------------------------------------------------------------------ promote: keep the preview's data or not


def keep_data_refusal(state, pinned: Release, releases: dict[str, Release]) -> str | None:
    """`promote: keep-data` where it makes no sense, as one line naming the field (before any host): on a
    preview with the pinned release's migrations (it has no database of its own), or on two previews of one
    release (only one database can become the schema version's)."""
    keeping: dict[str, str] = {}
    for name in sorted(state.previews):
        if state.previews[name].promote != "keep-data":
            continue
        rel = releases[name]
        if rel.id != pinned.id and rel.fingerprint == pinned.fingerprint:
            return (f"field 'previews.{name}.promote': keep-data, but release {rel.id} has the pinned release's "
                    "migrations: the preview uses the pinned schema's database and has none of its own to keep; "
                    "remove `promote` (or the preview)")
        if rel.id in keeping:
            return (f"field 'previews.{name}.promote': keep-data on previews {keeping[rel.id]} and {name} of one "
                    f"release ({rel.id}): only one database can be kept; set it on one of them")
        keeping[rel.id] = name
    return None


def promote_allocation(d: Desired, observed: dict[str, HostObserved], alloc):
    """Pinning a preview's release that needs a new schema database (a copy): with `promote: keep-data` and the
    preview's own database on the db host, that database is adopted (its tables renamed into `<app>_v<N>`; no
    copy, no migration, no write freeze); else the copy is said to be a fresh one. Returns (allocation, lines
    that block the plan)."""
    names = [n for n in sorted(d.previews) if d.previews[n].id == d.release.id]
    if not names or not alloc.new_database or alloc.copy_from is None or alloc.in_place:
        return alloc, ()
    lay, app, db = d.layout, d.state.app, d.db_host
    odb = observed[db.name]
    own = odb.previews.get("databases", frozenset())
    database, current = lay.database(alloc.schema), lay.database(alloc.copy_from)
    keep = next((n for n in names if d.state.previews[n].promote == "keep-data"), None)
    if keep is None:
        mine = [n for n in names if db_name(app, n) in own]
        if not mine:
            return alloc, ()
        tables, rows = odb.db_stats.get(current, (0, 0))[:2]
        note = (f"fresh copy of {current}: {tables} tables, ~{rows} rows; then migrate again (preview {mine[0]}'s "
                f"own database {db_name(app, mine[0])} is not kept: `promote: keep-data` on it keeps its data)")
        return replace(alloc, database_note=note), ()
    source = db_name(app, keep)
    if source in own:
        note = (f"adopted from preview {keep}: the tables of {source} renamed into it, its data kept; no copy, "
                "no migration")
        warning = (f"promoting preview {keep} keeps its data: {database} is its database {source} as it is now "
                   f"(no copy of {current}, no second migration, no write freeze); writes made to {current} since "
                   f"the preview's copy was made are NOT in {database}. {current} stays as it is. "
                   f"(`promote: fresh-copy` on the preview makes a fresh copy of {current} instead.)")
        return replace(alloc, copy_from=None, migrate=False, adopt_from=source, database_note=note,
                       warnings=(warning,)), ()  # (not "copied again": a stale copy is dropped, not used)
    recorded = [o.schemas.get(alloc.schema) for o in (observed[w.name] for w in d.web_hosts)]
    if database in odb.databases and any(r and r.migrated and r.copied_from is None for r in recorded):
        # Adopted by a run that stopped before the switch: the preview's tables are in it; used as it is.
        return type(alloc)(alloc.schema, alloc.current_schema, warnings=(
            f"{database} was adopted from preview {keep}'s database by a run that did not finish: it goes live as "
            f"it is (the preview's data; writes made to {current} since its copy are not in it).",)), ()
    return alloc, (f"field 'previews.{keep}.promote': keep-data, but the preview has no database of its own "
                   f"({source}) on {db.name} to keep: deploy the preview first, or remove `promote` for a fresh "
                   f"copy of {current}.",)


# ------------------------------------------------------------------ files


def preview_files(d: Desired, host: HostSpec, name: str, number: int, own: bool) -> tuple[ManagedFile, ...]:
    s, lay, app = d.state, d.layout, d.state.app
    p, rel = s.previews[name], d.previews[name]
    release_dir = lay.release_dir(number, rel.id)
    database = db_name(app, name) if own else lay.database(number)
    access = "ALL" if own or p.database == "write" else "SELECT"
    hosts = [f"{name}.{s.site.server_names[0]}"] if p.host else []
    common = {"app": app, "name": name, "release_id": rel.id}
    service = render("preview.service.j2", **common, socket_unit=unit(app, name, "socket"), release_dir=release_dir,
                     env_file=lay.env_file, secrets=lay.secrets, settings_module=SETTINGS_MODULE, database=database,
                     db_user=db_name(app, name), password_key=password_key(name), access=access,
                     allowed_hosts=hosts or allowed_hosts(d, host), workers=s.site.workers,
                     wsgi=s.django.wsgi_app, writable=[lay.shared(n) for n in s.shared])
    nginx = render("nginx-preview.conf.j2", **common, upstream=f"pinned_{app}_pv_{name.replace('-', '_')}",
                   socket=socket(app, name), port=s.site.port if p.host else p.port,
                   server_names=hosts or s.site.server_names or ["_"], max_body=s.site.max_body,
                   static_url=s.site.static_url, release_dir=release_dir)
    return (
        ManagedFile(unit_file(app, name, "socket"), render("preview.socket.j2", **common, socket=socket(app, name)),
                    f"preview {name}: socket unit", reload="systemd"),
        ManagedFile(unit_file(app, name, "service"), service, f"preview {name}: service unit", reload="systemd"),
        ManagedFile(nginx_conf(app, name), nginx, f"preview {name}: nginx server", reload="nginx"),
    )


# ------------------------------------------------------------------ the planner


def plan_previews(d: Desired, observed: dict[str, HostObserved], schema: int, current_schema: int | None,
                  planned: list, config_step, file_diff) -> tuple[list, tuple[str, ...]]:
    """The previews' steps on every host, and the plan's warnings about them. `planned`: the other planners'
    steps (a release or virtualenv they already build is not built twice)."""
    from .plan import Step

    steps: list = []
    warnings: list[str] = []
    lay, app = d.layout, d.state.app
    place = placements(d, observed, schema, current_schema)
    db = d.db_host
    odb = observed[db.name]
    current_db = lay.database(current_schema) if current_schema is not None else ""
    first_web = d.web_hosts[0].name
    for web in d.web_hosts:
        o = observed[web.name]
        mine = [s for s in planned if s.host == web.name]
        building = {s.change.release_id for s in mine if isinstance(s.change, c.Build)}
        venvs = {s.change.path for s in mine if isinstance(s.change, c.Venv)}
        for name, (number, own) in place.items():
            rel = d.previews[name]
            dp = replace(d, release=rel)
            release_dir = lay.release_dir(number, rel.id)
            r = o.releases.get(rel.id)
            build = (r is None or r.status != "ready" or r.schema != number) and rel.id not in building
            if build:
                building.add(rel.id)
                venv = lay.venv(rel.requirements_hash)
                if rel.requirements_hash not in o.venvs and venv not in venvs:
                    venvs.add(venv)
                    undo = lay.venv_undo(rel.requirements_hash)
                    steps.append(Step(web.name, ADD, c.Venv(venv, rel.requirements, tuple(rel.runtime), undo), venv,
                                      f"preview {name}: no virtualenv for these requirements yet", phase="prepare"))
                transfer = d.transfers.get(f"release:{rel.id}", {})
                steps.append(Step(web.name, ADD, c.Build(
                    app=app, release_id=rel.id, building=lay.building_dir(number, rel.id), final=release_dir,
                    tarball=lay.tarball(number, rel.id), archive=transfer.get("archive", ""), venv=venv,
                    settings=settings_module(dp, web, number, release_dir), runtime=runtime_module(),
                    metadata=release_metadata(dp, number), by_id=lay.by_id_link(rel.id),
                    by_id_target=lay.by_id_target(number, rel.id), undo=lay.build_undo(rel.id),
                ), release_dir, f"preview {name}: " + ("not on disk" if r is None else f"on disk but {r.status}")
                    + f": build from {rel.commit[:12]}" + (f", {transfer['bytes']} bytes to send" if transfer else ""),
                    phase="prepare"))
            files = preview_files(d, web, name, number, own)
            changed = False
            for wanted in files:
                have = o.previews.get("files", {}).get(wanted.path)
                step = config_step(web.name, _with_files(o, wanted.path, have), wanted,
                                   "site" if wanted.reload == "nginx" else "prepare")
                if step:
                    steps.append(step)
                    changed = changed or wanted.reload == "systemd"
            units = o.previews.get("units", {})
            su, sv = unit(app, name, "socket"), unit(app, name, "service")
            running = units.get(sv, {}).get("active") == "active" and units.get(su, {}).get("active") == "active" \
                and bool(units.get(su, {}).get("enabled"))
            if build or changed or not running:
                why = "new release" if build else ("its units changed" if changed else "not running")
                host_name = f"{name}.{d.state.site.server_names[0]}" if d.state.previews[name].host \
                    else health_host(d, web)
                steps.append(Step(web.name, ADD if not running else CHANGE, c.PreviewStart(
                    socket_unit=su, service_unit=sv, socket=socket(app, name), health_url=d.state.site.health_url,
                    health_host=host_name, restart=running and (changed or build),
                ), sv, f"preview {name} ({rel.id}) at {address(d, name, web)}: {why}", phase="start"))
        # Previews on this host that the state file no longer has.
        found = {n for path in o.previews.get("files", {}) if (n := name_of_path(app, path))}
        found |= {n for u in o.previews.get("units", {}) if (n := name_of_path(app, "/" + u))}
        for name in sorted(found - set(place)):
            files = tuple(sorted(path for path in o.previews.get("files", {})
                                 if name_of_path(app, path) == name))
            steps.append(Step(web.name, REMOVE, c.PreviewRemove(unit(app, name, "socket"), unit(app, name, "service"),
                                                                files), unit(app, name, "service"),
                              f"preview {name} is no longer in the state file: stopped, its units and nginx server "
                              "removed", phase="cleanup"))
    # The db host: accounts, own databases (copied, migrated), and what removed previews leave.
    wanted_accounts: set[str] = set()
    wanted_dbs: set[str] = set()
    users = odb.previews.get("users", {})
    dbs = odb.previews.get("databases", frozenset())
    adopted: set[str] = set()  # a promoted preview's own database whose tables become the schema's (keep-data)
    for name, (number, own) in place.items():
        rel, p = d.previews[name], d.state.previews[name]
        user = db_name(app, name)
        database = user if own else lay.database(number)
        privileges = "ALL" if own or p.database == "write" else "SELECT"
        grant = database.replace("_", "\\_")
        said = "ALL PRIVILEGES" if privileges == "ALL" else "SELECT"
        for web in d.web_hosts:
            account = f"{user}@{db_user_host(d, web)}"
            wanted_accounts.add(account)
            have = users.get(account)
            want = [f"GRANT {said} ON `{grant}`.* TO `{user}`@`{db_user_host(d, web)}`"]
            if have is None or [g.split(" TO ")[0] for g in have] != [w.split(" TO ")[0] for w in want]:
                steps.append(Step(db.name, ADD if have is None else CHANGE, c.PreviewAccount(
                    user=user, host=db_user_host(d, web), secrets=lay.secrets, password_key=password_key(name),
                    privileges=privileges, database=grant,
                ), account, f"preview {name} on {web.name}: {said} on {database} only"
                    + (" (read-only: `database: write` in the state file gives it ALL)" if said == "SELECT" else ""),
                    phase="accounts"))
        if own:
            wanted_dbs.add(database)
            if database not in dbs:
                source = current_db if current_db and current_db in odb.databases else ""
                steps.append(Step(db.name, ADD, c.Database(database, source), database,
                                  f"preview {name} (release {rel.id}) has other migrations than "
                                  f"{lay.database(schema)}: its own database, "
                                  + (f"a copy of {source}" if source else "empty")
                                  + ", marked as a preview by its name; dropped with the preview", phase="database"))
            first = observed[first_web]
            service = unit_file(app, name, "service")
            have_unit = first.previews.get("files", {}).get(service)
            wanted_unit = next(f for f in preview_files(d, d.web_hosts[0], name, number, own) if f.path == service)
            if database not in dbs or have_unit is None or have_unit.content != wanted_unit.content:
                steps.append(Step(first_web, CHANGE, c.PreviewMigrate(app, lay.release_dir(number, rel.id), database,
                                                                      user, password_key(name)),
                                  database, f"preview {name}: migrate with release {rel.id}", phase="migrate"))
        made = next((s.change for s in planned if s.host == db.name and s.kind == "database"
                     and s.change.database == lay.database(schema)), None)
        if rel.id == d.release.id and made is not None and made.adopt_from:
            adopted.add(made.adopt_from)
            warnings.append(f"release {rel.id} is preview {name}'s, already built: it is not rebuilt.")
        elif rel.id == d.release.id and made is not None:
            warnings.append(f"release {rel.id} is preview {name}'s, already built: it is not rebuilt; it goes live "
                            f"on a fresh copy of {current_db} migrated again ({lay.database(schema)})"
                            + (f"; the preview's own database {user} is not kept (`promote: keep-data` keeps it)"
                               if user in dbs else "") + ".")
    gone_accounts = sorted(a for a in users if a not in wanted_accounts)
    gone_dbs = sorted(x for x in dbs if x not in wanted_dbs and x not in adopted)  # adopting drops it
    for user in sorted({a.rsplit("@", 1)[0] for a in gone_accounts} | set(gone_dbs)):
        accounts = tuple(a for a in gone_accounts if a.rsplit("@", 1)[0] == user)
        database = user if user in gone_dbs else ""
        what = ", ".join([*accounts, *([f"database {database}"] if database else [])])
        steps.append(Step(db.name, REMOVE, c.PreviewDrop(accounts, database), user,
                          f"no preview uses it any more: {what} dropped", phase="cleanup"))
    return steps, tuple(warnings)


def _with_files(o: HostObserved, path: str, have) -> HostObserved:
    """`o` as config_step reads it, with a preview's file (observed by glob) in its files."""
    return replace(o, files={**o.files, path: have}) if path not in o.files else o


def preview_releases(d: Desired) -> set[str]:
    return {r.id for r in d.previews.values()}


def preview_venvs(d: Desired) -> set[str]:
    return {r.requirements_hash for r in d.previews.values()}


__all__ = ["Release", "plan_previews", "keep_data_refusal", "promote_allocation", "preview_request",
           "preview_archives", "preview_secret_names",
           "preview_releases", "preview_venvs", "address", "placements"]
