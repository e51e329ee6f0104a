"""A pure simulator of plan steps: what a host's observed state becomes once a step has run.

It lets property tests check the plan without hosts: plan, apply, plan again must be empty.
"""

from __future__ import annotations

import json
from dataclasses import replace

from state.desired import Desired
from state.layout import NGINX_DEFAULT_SITE
from state.observed import FileOnHost, HostObserved, ReleaseOnDisk, SchemaOnDisk
from state.plan import Plan, Step


def apply_step(o: HostObserved, step: Step, d: Desired) -> HostObserved:
    det, app = step.details, d.state.app
    units = {k: dict(v) for k, v in o.units.items()}
    if step.kind == "packages":
        paths = dict(o.paths)
        if "nginx" in det["packages"]:
            paths[NGINX_DEFAULT_SITE] = {"type": "link", "mode": "0777", "owner": "root", "group": "root"}
        for pkg, unit in (("nginx", "nginx.service"), ("mariadb-server", "mariadb.service")):
            if pkg in det["packages"]:
                units[unit] = {"active": "active", "enabled": True}
        return replace(o, reachable_python=True, packages=o.packages | set(det["packages"]), paths=paths,
                       units=units, mysql_running=o.mysql_running or "mariadb-server" in det["packages"])
    if step.kind == "service":
        units[det["unit"]] = {"active": "active", "enabled": True}
        return replace(o, units=units, mysql_running=o.mysql_running or det["unit"] == "mariadb.service")
    if step.kind == "user":
        keys = "".join(k + "\n" for k in det.get("keys") or []) or None
        users = {**o.users, det["name"]: {"home": det.get("home", ""), "authorized_keys": keys}}
        return replace(o, users=users)
    if step.kind == "directory":
        return replace(o, paths={**o.paths, det["path"]: {"type": "dir", "mode": "0755", "owner": "root",
                                                         "group": "root"}})
    if step.kind == "secrets":
        return replace(o, secrets={"mode": "0640", "owner": "root", "group": app,
                                   "keys": ["DB_PASSWORD", "SECRET_KEY"], "digest": f"secrets-of-{step.host}"})
    if step.kind == "secrets-read":
        return o
    if step.kind == "secrets-copy":
        source = d.db_host.name
        return replace(o, secrets={"mode": "0640", "owner": "root", "group": app,
                                   "keys": ["DB_PASSWORD", "SECRET_KEY"], "digest": f"secrets-of-{source}"})
    if step.kind == "database":
        return replace(o, databases=o.databases | {det["database"]},
                       db_stats={**o.db_stats, det["database"]: o.db_stats.get(det["copy_from"], (0, 0))})
    if step.kind == "db-user":
        account = f"{det['user']}@{det['host']}"
        grant = f"GRANT ALL PRIVILEGES ON `{d.layout.database_pattern}`.* TO `{det['user']}`@`{det['host']}`"
        return replace(o, db_users={**o.db_users, account: [grant]})
    if step.kind == "config":
        return replace(o, files={**o.files, det["path"]: FileOnHost(det["content"], det["mode"], det["owner"],
                                                                    det["group"])})
    if step.kind == "nginx-default-site":
        return replace(o, paths={**o.paths, det["path"]: None})
    if step.kind == "venv":
        return replace(o, venvs=o.venvs | {det["path"].rsplit("/", 1)[1]})
    if step.kind == "release":
        meta = json.loads(det["metadata"])
        rel = ReleaseOnDisk(id=det["release_id"], schema=det["schema"], status="ready", commit=meta["commit"],
                            requirements_hash=meta["requirements_hash"])
        schemas = dict(o.schemas)
        schemas.setdefault(det["schema"], SchemaOnDisk(det["schema"], None, None, False, None, None))
        return replace(o, releases={**o.releases, rel.id: rel}, schemas=schemas,
                       by_id={**o.by_id, rel.id: f"../versions/{det['schema']}/{rel.id}"})
    if step.kind == "migrate":
        return o  # the database's content; what the web hosts record is the `schema` step
    if step.kind == "schema":
        info = json.loads(det["info"])
        old = o.schemas.get(info["schema"])
        schema = SchemaOnDisk(info["schema"], info["fingerprint"], info["database"], True, info["copied_from"],
                              old.last if old else None, tuple(info["migrations"]), old.served if old else False)
        return replace(o, schemas={**o.schemas, info["schema"]: schema})
    if step.kind == "app":
        for kind in ("socket", "service"):
            units[f"{app}@{det['release_id']}.{kind}"] = {"active": "active", "enabled": kind == "socket"}
        return replace(o, units=units)
    if step.kind == "link":
        number = int(det["path"].rstrip("/").split("/")[-2])
        old = o.schemas.get(number) or SchemaOnDisk(number, None, None, False, None, None)
        return replace(o, schemas={**o.schemas, number: replace(old, last=det["target"])})
    if step.kind == "switch":
        number = int(det["target"].split("/")[1])
        schemas = dict(o.schemas)
        if number in schemas:
            schemas[number] = replace(schemas[number], served=True)
        return replace(o, current=det["release_id"], current_target=det["target"], schemas=schemas,
                       files={**o.files, det["upstream_path"]: FileOnHost(det["upstream"], "0644", "root", "root")})
    if step.kind == "stop":
        for kind in ("socket", "service"):
            units.pop(f"{app}@{det['release_id']}.{kind}", None)
        return replace(o, units=units)
    if step.kind == "prune":
        rid = det["release_id"]
        if rid:
            for kind in ("socket", "service"):
                units.pop(f"{app}@{rid}.{kind}", None)
            releases = {k: v for k, v in o.releases.items() if k != rid}
            by_id = {k: v for k, v in o.by_id.items() if k != rid}
            return replace(o, releases=releases, by_id=by_id, units=units)
        if "/venvs/" in det["path"]:
            return replace(o, venvs=o.venvs - {det["path"].rsplit("/", 1)[1]})
        return replace(o, building=tuple(b for b in o.building if b != det["path"]))
    raise AssertionError(f"the simulator does not know step kind {step.kind!r}")


def apply_plan(plan: Plan, observed: dict[str, HostObserved], d: Desired) -> dict[str, HostObserved]:
    result = dict(observed)
    for step in plan.steps:
        result[step.host] = apply_step(result[step.host], step, d)
    return result
