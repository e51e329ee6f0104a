"""One run of pinned: the environment's desired state, every host's observed state, and the plan.

pyinfra executes deploy.py once per host (in parallel greenlets); the plan needs every host's facts, so
the first host to ask computes it (printed once) and the others wait for it. The `pinned` command uses
the same functions through pyinfra's API.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path

import gevent
import gevent.lock
from pyinfra import inventory
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_host

from state import render
from state.check import check_env
from state.desired import Desired, HostSpec, mariadb_network_file, site_files, user_files
from state.layout import NGINX_DEFAULT_SITE
from state.model import State, selected_env
from state.observed import HostObserved
from state.plan import Plan, plan
from state.source import archive, transfer_sizes

from . import lock
from .facts import AppState, observe_request

PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    env: str
    state_file: Path
    state: State
    repo: Path
    desired: Desired
    observed: dict[str, HostObserved]
    plan: Plan
    # The db host's secrets on their way to the web hosts: memory only (see system.secrets_read).
    secrets: BytesIO = field(default_factory=BytesIO)
    lock_holder: str | None = None  # this run holds the deploy lock (released by its last operation)

    def archive(self, base_commit: str = "") -> str:
        """The release's tarball: whole, or only what changed since `base_commit`."""
        return str(archive(self.repo, self.desired.release, self.state, release_cache(), base_commit or None))

    @property
    def by(self) -> str:
        return f"{deployer()}@{socket.gethostname()}"

    @property
    def display_path(self) -> str:
        path = self.state_file
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def deployer() -> str:
    """Who runs the deploy (the user behind sudo, if any): recorded in the history and the lock."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def release_cache() -> Path:
    return Path(os.environ.get("PINNED_CACHE", PROJECT / ".cache")) / "releases"


def host_spec(h) -> HostSpec:
    roles = tuple(r for r in ("web", "db") if r in h.groups) or ("web", "db")
    address = h.data.get("address") or h.data.get("ssh_hostname") or h.name
    return HostSpec(name=h.name, address=address, roles=roles)


def observe(d: Desired, hosts) -> dict[str, HostObserved]:
    """Every host's observed state: one fact (one round trip) per host, all hosts at once."""
    lay = d.layout
    files = [f.path for f in (*site_files(d), *user_files(d), mariadb_network_file(d))] + [lay.nginx_upstream]
    request = observe_request(
        app=d.state.app, users=[u.name for u in d.state.users], packages=list(d.packages()),
        paths=[*lay.directories, NGINX_DEFAULT_SITE], files=files,
        secrets=lay.secrets, history=lay.history,
    )

    def fact(h):
        with ctx_host.use(h):
            return h.name, h.get_fact(AppState, request)

    jobs = [gevent.spawn(fact, h) for h in hosts]
    gevent.joinall(jobs, raise_error=True)
    return dict(job.value for job in jobs)


def compute(env: str, hosts, lock_holder: str | None = None) -> Run:
    """Desired state from the state file, observed state from the hosts, and the plan between them.
    With `lock_holder`, the deploy lock is taken on every host first (see operations.lock)."""
    checked = check_env(env)
    env, path, state, release = checked.env, checked.path, checked.state, checked.release
    specs = tuple(host_spec(h) for h in hosts)
    if not any("web" in s.roles for s in specs) or not any("db" in s.roles for s in specs):
        raise PyinfraError("pinned: the inventory needs a host in group `web` and one in group `db`")
    if lock_holder:
        try:
            for warning in lock.acquire(hosts, state.app, lock_holder):
                print(f"pinned: warning: {warning}", file=sys.stderr, flush=True)
        except lock.LockRefused as exc:
            raise PyinfraError(f"pinned: refused: {exc}") from None
    desired = Desired(env=env, state=state, release=release, hosts=specs, state_file=str(path))
    observed = observe(desired, hosts)
    # What a new release costs to send: whole, or as a delta from the release each web host serves.
    bases = {o.current_release.commit for o in observed.values()
             if o.current_release and o.current_release.status == "ready" and o.current_release.commit}
    if not all(desired.release.id in observed[w.name].releases for w in desired.web_hosts):
        desired = replace(desired, transfers=transfer_sizes(checked.repo, release, state, bases, release_cache()))
    the_plan = plan(desired, observed)
    run = Run(env, path, state, checked.repo, desired, observed, the_plan)
    run.lock_holder = lock_holder if lock_holder and not the_plan.empty else None
    if lock_holder and the_plan.empty:  # nothing will run: no need to hold it
        lock.release_now(hosts, state.app, lock_holder)
    return run


_lock = gevent.lock.RLock()
_runs: dict[str, Run] = {}


def environment_run() -> Run:
    """The run's plan inside `pyinfra inventory.py deploy.py` (computed once, printed once). A real run
    (not --dry) holds the deploy lock on every host until its last operation."""
    env = selected_env(sys.argv, os.environ)
    with _lock:
        if env not in _runs:
            holder = None if "--dry" in sys.argv else lock.holder_line(deployer())
            run = compute(env, inventory.get_active_hosts(), holder)
            print(render.render_text(run.plan, run.display_path, color=sys.stdout.isatty()), flush=True)
            _runs[env] = run
        return _runs[env]
