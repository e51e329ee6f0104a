"""One run of pinned inside pyinfra: the environment's plan, computed once for all hosts and printed.

pyinfra executes deploy.py once per host (in parallel greenlets); the plan needs every host's facts,
so the first host to ask computes it and the others wait for it.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.lock
from pyinfra import host as current_host
from pyinfra import inventory
from pyinfra.context import ctx_host

from state import render
from state.desired import Desired, HostSpec, site_files, upstream_file, user_files
from state.layout import NGINX_DEFAULT_SITE, Layout
from state.model import State, load_state, selected_env, state_path
from state.observed import HostObserved
from state.plan import Plan, plan
from state.source import archive, release, repository_path

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

    def archive(self) -> str:
        cache = Path(os.environ.get("PINNED_CACHE", PROJECT / ".cache")) / "releases"
        return str(archive(self.repo, self.desired.release, self.state, cache))

    @property
    def by(self) -> str:
        return f"{os.environ.get('SUDO_USER') or getpass.getuser()}@{socket.gethostname()}"


_lock = gevent.lock.RLock()
_runs: dict[str, Run] = {}


def host_spec(h) -> HostSpec:
    roles = tuple(r for r in ("web", "db") if r in h.groups) or ("web", "db")
    address = h.data.get("address") or h.data.get("ssh_hostname") or h.name
    return HostSpec(name=h.name, address=address, roles=roles)


def observe(d: Desired, hosts) -> dict[str, HostObserved]:
    lay = d.layout
    files = [f.path for f in (*site_files(d), *user_files(d))] + [lay.nginx_upstream]
    request = observe_request(
        app=d.state.app, users=[u.name for u in d.state.users], packages=list(d.packages()),
        paths=[lay.root, lay.versions, lay.venvs, lay.by_id, NGINX_DEFAULT_SITE], files=files,
        secrets=lay.secrets, history=lay.history,
    )

    def fact(h):
        with ctx_host.use(h):
            return h.name, h.get_fact(AppState, request)

    jobs = [gevent.spawn(fact, h) for h in hosts]
    gevent.joinall(jobs, raise_error=True)
    return dict(job.value for job in jobs)


def environment_run() -> Run:
    """The run's plan (computed by the first host to ask, printed once)."""
    env = selected_env(sys.argv, os.environ)
    with _lock:
        if env in _runs:
            return _runs[env]
        path = state_path(env)
        state = load_state(path)
        repo = repository_path(state, path)
        hosts = list(inventory.get_active_hosts())
        specs = tuple(host_spec(h) for h in hosts)
        if not any("web" in s.roles for s in specs) or not any("db" in s.roles for s in specs):
            raise SystemExit("pinned: the inventory needs a host in group `web` and one in group `db`")
        desired = Desired(env=env, state=state, release=release(repo, state.release, state), hosts=specs,
                          state_file=str(path))
        observed = observe(desired, hosts)
        the_plan = plan(desired, observed)
        rel_path = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
        print(render.render_text(the_plan, rel_path, color=sys.stdout.isatty()), flush=True)
        _runs[env] = Run(env, path, state, repo, desired, observed, the_plan)
        return _runs[env]


def my_steps(run: Run):
    return run.plan.for_host(current_host.name)


__all__ = ["Run", "environment_run", "my_steps", "Layout", "upstream_file"]
