"""The engine: one way through for every command — check → lock → observe → plan → print → run.

* check: the environment's state file, its repository and pinned commit (state.check), before any host.
* lock: a run that changes hosts takes the deploy lock on every host first (pinned/lock.py), so the
  plan is made from what no other run is changing; a dry run and the read-only commands take none. The
  lock lives as long as the run's connections: it ends with the process, however the process ends.
* observe: one fact per host, every host at once (operations/facts.py, parsed by state/observed.py);
  a probe that fails is an error naming the host, never an empty host.
* plan: state.plan.plan(desired, observed) — converged, changes, or blocked.
* print: state.render; run: deploy.py maps each step's change to its one operation.

pyinfra executes deploy.py once per host (in parallel greenlets); the plan needs every host's facts, so
the first host to ask computes it (printed once) and the others wait for it. The `pinned` command uses
the same functions through pyinfra's API. Nothing here emits a command for a host: operations/ does.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import gevent
import gevent.lock
from pyinfra import inventory
from pyinfra import state as pyinfra_state
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_host

from pinned.operations.facts import ReleaseFiles, observe_host, observe_request
from pinned.state import render
from pinned.state.changes import Build, WriteFreeze
from pinned.state.check import Checked, check_env
from pinned.state.desired import Desired, HostSpec, env_file, mariadb_network_file, site_files, user_files
from pinned.state.layout import NGINX_DEFAULT_SITE
from pinned.state.observed import HostObserved, ProbeError, describe_probe_error
from pinned.state.plan import BLOCKED, Plan, plan
from pinned.state.plan_tls import CERTBOT_TIMER
from pinned.state.previews import preview_archives, preview_request
from pinned.state.processes import process_files
from pinned.state.source import known_files, manifest_digest, parse_manifest, transfer_sizes

from . import lock, saved_plan
from .connect import ERRORS
from .freeze import FreezeWatch


class EngineError(Exception):
    """A run that cannot go on: one line saying why (no traceback)."""


@dataclass
class View:
    """The environment as checked and observed: what read-only commands show."""

    checked: Checked
    desired: Desired
    observed: dict[str, HostObserved]

    @property
    def env(self) -> str:
        return self.checked.env

    @property
    def state(self):
        return self.checked.state

    @property
    def display_path(self) -> str:
        path = self.checked.path
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


@dataclass
class Run(View):
    """A view with its plan; `lock` (and `lock_holder`, our holder line) are set while this run holds the
    deploy lock; `lock.lines[host]` is what each host's lock file says (with its holder process's pid)."""

    plan: Plan | None = None
    lock_holder: str | None = None
    lock: lock.DeployLock | None = None


def deployer() -> str:
    """Who runs the deploy (the user behind sudo, if any): recorded in the history and the lock."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def deployed_by() -> str:
    return f"{deployer()}@{socket.gethostname()}"


def release_cache() -> Path:
    """Built releases kept on this machine (only a cache: a deploy decides what to send from the hosts)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pinned"
    return Path(os.environ.get("PINNED_CACHE") or default) / "releases"


def host_spec(h) -> HostSpec:
    roles = tuple(r for r in ("web", "db") if r in h.groups) or ("web", "db")
    address = h.data.get("address") or h.data.get("ssh_hostname") or h.name
    return HostSpec(name=h.name, address=address, roles=roles)


def desired_of(checked: Checked, hosts) -> Desired:
    # In the inventory's order (the state file's `hosts.web`, then `db`): pyinfra keeps its active hosts in a
    # set, and a rollout's canary is the first web host.
    position = {h.name: i for i, h in enumerate(inventory)}
    specs = tuple(host_spec(h) for h in sorted(hosts, key=lambda h: position.get(h.name, len(position))))
    if not any("web" in s.roles for s in specs) or not any("db" in s.roles for s in specs):
        raise EngineError("the inventory needs a host in group `web` and one in group `db`")
    return Desired(env=checked.env, state=checked.state, release=checked.release, hosts=specs,
                   state_file=str(checked.path), by=deployed_by(), tls=checked.tls, acme=checked.acme,
                   previews=checked.previews)


def request_for(d: Desired) -> str:
    """What the observe fact asks each host about (the same for every host of the environment)."""
    lay = d.layout
    acme_units = [CERTBOT_TIMER] if d.state.site.tls and d.state.site.tls.acme else []
    files = [f.path for f in (*site_files(d), env_file(d), *user_files(d), mariadb_network_file(d),
                              *process_files(d))] + [
        lay.nginx_upstream, *lay.backup_files, lay.tls_certificate, lay.acme_renewal, lay.acme_ca_bundle,
        lay.certbot_dropin]
    return observe_request(
        app=d.state.app, root=lay.root, unit_prefix=lay.unit_prefix, db_pattern=lay.database_regex,
        users=[u.name for u in d.state.users], packages=list(d.packages()),
        paths=[*lay.directories, lay.shared_root, lay.scratch_root, *(lay.shared(n) for n in d.state.shared_names),
               NGINX_DEFAULT_SITE, lay.acme_webroot],
        files=files,
        secrets=lay.secrets, history=lay.history, units=[lay.backup_timer, *acme_units],
        loaded=lay.loaded,
        certificates=[lay.tls_certificate, lay.acme_certificate], keys=[lay.tls_key],
        previews=preview_request(d), extra_unit_prefixes=[lay.extra_unit_prefix],
        unit_prefixes=[lay.warm_prefix],
    )


def observe(d: Desired, hosts) -> dict[str, HostObserved]:
    """Every host's observed state: one fact (one round trip) per host, all hosts at once. A host that
    cannot be observed is an error naming it and the probe that failed (every such host, one line each)."""
    request = request_for(d)

    def fact(h):
        with ctx_host.use(h):
            try:
                return h.name, observe_host(h, request)
            except ProbeError as exc:
                return h.name, exc

    jobs = [gevent.spawn(fact, h) for h in hosts]
    gevent.joinall(jobs, raise_error=True)
    results = dict(job.value for job in jobs)
    failed = [describe_probe_error(name, value).removeprefix("pinned: error: ")
              for name, value in results.items() if isinstance(value, ProbeError)]
    if failed:
        raise EngineError("\n".join(failed))
    return results


def inspect(env: str, hosts) -> View:
    """Check and observe only: no lock, no plan, nothing built (read-only commands)."""
    checked = check_env(env)
    desired = desired_of(checked, hosts)
    return View(checked, desired, observe(desired, hosts))


def base_files(checked: Checked, desired: Desired, observed: dict[str, HostObserved], hosts
               ) -> dict[str, tuple[str, dict[str, str] | None]]:
    """What each web host serves now, as files (path → mode and blob id): the base its new release is built
    from as hard links. Decided from what the hosts have: each release records a digest of its files when it
    is built; the local repository answers when it has that commit and agrees with the digest (no round
    trip), else the host prints the release's manifest (one command, once per distinct base; a shallow or
    fresh clone). Unknown (None): the release is sent whole."""
    by_name = {h.name: h for h in hosts}
    served: dict[str, tuple[str, str, str]] = {}  # host → (release id, commit, digest)
    for web in desired.web_hosts:
        r = observed[web.name].current_release
        if r and r.status == "ready" and r.commit:
            served[web.name] = (r.id, r.commit, r.files)
    found: dict[tuple[str, str, str], dict[str, str] | None] = {}
    for key in dict.fromkeys(served.values()):
        found[key] = known_files(checked.repo, key[1], checked.state, key[2])
    missing = [key for key, files in found.items() if files is None]

    def ask(key):
        release_id, _commit, digest = key
        for name in (n for n, k in served.items() if k == key):
            r = observed[name].current_release
            host = by_name[name]
            with ctx_host.use(host):
                files = parse_manifest(host.get_fact(ReleaseFiles, desired.layout.release_dir(r.schema, release_id)))
            if files is not None and (not digest or manifest_digest(files) == digest):
                return key, files
        return key, None

    jobs = [gevent.spawn(ask, key) for key in missing]
    gevent.joinall(jobs, raise_error=True)
    found.update(job.value for job in jobs)
    return {name: (key[0], found[key]) for name, key in served.items()}


def with_transfers(checked: Checked, desired: Desired, observed: dict[str, HostObserved], hosts) -> Desired:
    """What the new release costs to send, whole or as a delta from the release each web host serves:
    the archives are made here (locally, in the release cache) only when some web host must build."""
    bases = base_files(checked, desired, observed, hosts)
    transfers = transfer_sizes(checked.repo, checked.release, checked.state, bases, release_cache())
    return replace(desired, transfers={**transfers, **preview_archives(checked.repo, desired, release_cache())})


def take_lock(checked: Checked, desired: Desired, hosts, holder: str) -> lock.DeployLock:
    """The deploy lock on every host (or none): an EngineError naming the holder when another run has it."""
    try:
        return lock.acquire(hosts, desired.layout.lock, holder, checked.state.app)
    except lock.LockRefused as exc:
        raise EngineError(f"refused: {exc}") from None
    except lock.LockError as exc:
        raise EngineError(str(exc)) from None


def compute(env: str, hosts, lock_holder: str | None = None) -> Run:
    """Check, (lock,) observe and plan. With `lock_holder`, the deploy lock is taken on every host first
    and kept (run.lock) only if there is something to run; it lasts until release_lock(run) or until this
    process ends (its connections close)."""
    checked = check_env(env)
    desired = desired_of(checked, hosts)
    held = take_lock(checked, desired, hosts, lock_holder) if lock_holder else None
    try:
        observed = observe(desired, hosts)
        the_plan = plan(desired, observed)
        if any(isinstance(s.change, Build) for s in the_plan.steps):
            desired = with_transfers(checked, desired, observed, hosts)
            the_plan = plan(desired, observed)
    except BaseException:
        lock.release(held)
        raise
    run = Run(checked, desired, observed, the_plan)
    if held and the_plan.empty:  # nothing will run: no need to hold it
        lock.release(held)
    elif held:
        run.lock_holder, run.lock = lock_holder, held
    return run


def release_lock(run: Run) -> None:
    """Release the run's deploy lock now (it is released anyway when this process ends)."""
    lock.release(run.lock)
    run.lock, run.lock_holder = None, None


def locked(env: str, hosts, work) -> object:
    """Run `work(view)` under the deploy lock of every host (commands that change a host outside a deploy);
    released when it returns or raises."""
    checked = check_env(env)
    desired = desired_of(checked, hosts)
    held = take_lock(checked, desired, hosts, lock.holder_line(deployer()))
    try:
        return work(View(checked, desired, observe(desired, hosts)))
    finally:
        lock.release(held)


def check_saved_plan(run: Run, path: str, hosts) -> None:
    """A run given a saved plan (`--data plan=FILE`) goes on only if the hosts, the state file and the
    pinned commit are as they were when the plan was made, so it runs exactly the saved steps; otherwise
    it ends here, before any operation, naming what moved (the deploy lock is released)."""
    try:
        document = saved_plan.load(path)
        problems = saved_plan.differences(document, run, render.plan_json(run.plan, run.display_path),
                                          [h.name for h in hosts])
    except saved_plan.SavedPlanError as exc:
        release_lock(run)
        raise EngineError(str(exc)) from None
    if problems:
        release_lock(run)
        raise EngineError(f"refused: the saved plan {path} (made {document.get('made_at')} by "
                          f"{document.get('made_by')}) no longer applies, nothing was changed:\n"
                          + "\n".join(f"  {p}" for p in problems)
                          + f"\nReview a new plan: pinned --env {run.checked.env} plan --out {path}")
    print(f"Applying the saved plan {path} (made {document.get('made_at')} by {document.get('made_by')}): "
          "the hosts, the state file and the pinned commit are as they were.", flush=True)


_compute_once = gevent.lock.RLock()
_runs: dict[str, Run | PyinfraError] = {}


def environment_run(env: str, dry: bool) -> Run:
    """The run's plan inside `pyinfra inventory.py deploy.py` (computed once, printed once). A real run
    (not --dry) holds the deploy lock on every host until the pyinfra process ends, whatever ends it
    (done, failed, declined at the confirmation, killed). A blocked plan stops the run here, before any
    operation, with exit status 1."""
    with _compute_once:
        if env not in _runs:
            holder = None if dry else lock.holder_line(deployer())
            hosts = inventory.get_active_hosts()
            try:
                if ERRORS.failed:  # pyinfra went on without them (told to continue): pinned does not
                    raise EngineError(f"not connected to {', '.join(ERRORS.failed)} (see above): nothing was "
                                      "changed on any host")
                run = compute(env, hosts, holder)
                saved = saved_plan.saved_plan_path(sys.argv)
                if saved:
                    check_saved_plan(run, saved, hosts)
                print(render.render_text(run.plan, run.display_path, color=sys.stdout.isatty()), flush=True)
                _runs[env] = run
                if not dry and any(isinstance(s.change, WriteFreeze) for s in run.plan.steps):
                    pyinfra_state.add_callback_handler(FreezeWatch(run.plan, hosts))
                if run.plan.status == BLOCKED:
                    _runs[env] = PyinfraError("pinned: the plan is blocked (see above): nothing was changed")
            except EngineError as exc:
                _runs[env] = PyinfraError(f"pinned: {exc}")
        outcome = _runs[env]
        if isinstance(outcome, PyinfraError):
            raise outcome
        return outcome
