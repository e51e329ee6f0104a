"""pinned: converge the hosts to state/<env>.yaml.

    pyinfra inventory.py deploy.py --dry     # print the plan, change nothing
    pyinfra inventory.py deploy.py           # print the plan, confirm, converge

The plan is our own diff of desired vs observed state (state/plan.py), computed once for every host and
printed first. Below, each of this host's steps becomes exactly one operation. Steps run phase by phase
(state.plan.PHASES), each phase on every host before the next, so no host switches before all are ready
(and with FAIL_PERCENT = 0 in config.py, a failure on any host stops every host).
"""

from pyinfra import host

from operations import database, files, lock, release, system
from operations.session import environment_run
from state.plan import PHASES, SYMBOL

run = environment_run()
app, lay, rel = run.state.app, run.desired.layout, run.desired.release

# step kind -> (operation, its arguments from the step's details)
OPERATIONS = {
    "packages": (system.packages, lambda d: dict(packages=d["packages"])),
    "service": (system.service, lambda d: dict(unit=d["unit"])),
    "user": (system.user, lambda d: dict(login=d["name"], system=d["system"], home=d.get("home", ""),
                                         keys=d.get("keys"))),
    "directory": (system.directory, lambda d: dict(path=d["path"])),
    "secrets": (system.secrets_file, lambda d: dict(path=d["path"], group=app)),
    "secrets-read": (system.secrets_read, lambda d: dict(path=d["path"], buffer=run.secrets)),
    "secrets-copy": (system.secrets_copy, lambda d: dict(path=d["path"], group=app, buffer=run.secrets)),
    "database": (database.database, lambda d: dict(database=d["database"], copy_from=d["copy_from"],
                                                   recreate=d["recreate"])),
    "db-user": (database.account, lambda d: dict(user=d["user"], host=d["host"], secrets=lay.secrets,
                                                 pattern=lay.database_pattern, revoke=d.get("revoke", False))),
    "config": (files.config_file, lambda d: dict(path=d["path"], content=d["content"], mode=d["mode"],
                                                 owner=d["owner"], group=d["group"], reload=d.get("reload", ""))),
    "nginx-default-site": (files.remove_file, lambda d: dict(path=d["path"], reload="nginx")),
    "venv": (release.venv, lambda d: dict(path=d["path"], requirements=rel.requirements, extra=list(rel.runtime))),
    "release": (release.build, lambda d: dict(app=app, root=lay.root, schema=d["schema"],
                                              release_id=d["release_id"], archive=run.archive(d["base_commit"]),
                                              venv=d["venv"], settings=d["settings"], metadata=d["metadata"],
                                              base_dir=d["base_dir"], replaced=d["replaced"])),
    "migrate": (database.migrate, lambda d: dict(app=app, release_dir=d["release_dir"], database=d["database"],
                                                 release_id=d["release_id"])),
    "schema": (database.schema_file, lambda d: dict(schema_dir=d["schema_dir"], info=d["info"])),
    "app": (release.start, lambda d: dict(app=app, release_id=d["release_id"], socket=d["socket"],
                                          health_url=d["health_url"], health_host=d["health_host"],
                                          release_dir=d["release_dir"])),
    "link": (files.link, lambda d: dict(path=d["path"], target=d["target"])),
    "switch": (release.switch, lambda d: dict(root=lay.root, target=d["target"], upstream_path=d["upstream_path"],
                                              upstream=d["upstream"], from_release=d["from"],
                                              release_id=d["release_id"], by=run.by)),
    "stop": (release.stop, lambda d: dict(app=app, release_id=d["release_id"])),
    "prune": (release.prune, lambda d: dict(app=app, root=lay.root, release_id=d["release_id"], path=d["path"])),
}

# Every host walks the same sequence of slots (phase, i) — its i-th step of the phase, or nothing — so
# pyinfra runs each slot on all hosts at once and no host runs ahead into a later phase.
steps = run.plan.for_host(host.name)
for phase in host.loop(PHASES):
    mine = [s for s in steps if s.phase == phase]
    for i in host.loop(range(run.plan.width(phase))):
        step = mine[i] if i < len(mine) else None
        operation, arguments = OPERATIONS[step.kind] if step else (files.nothing, lambda d: {})
        name = f"{SYMBOL[step.action]} {step.kind} {step.target}" if step else f"({phase}: nothing here)"
        operation(name=name, **arguments(step.details if step else {}))

if run.lock_holder:
    lock.release(app=app, ours=run.lock_holder, name="release the deploy lock")
