"""The write freeze from the engine's side: lift it at once when a run fails inside it, and say how long it
lasted. (The freeze's steps are planned in state/plan.py plan_write_freeze and applied by operations/freeze.py;
a run that dies without lifting it is covered by the lock's undo hooks: pinned/lock.py.)"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from io import StringIO

import gevent
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.state import BaseStateCallback

from pinned.operations.connection import host_arguments
from pinned.operations.connection import run as run_on
from pinned.operations.freeze import database_command, undo_text, web_command
from pinned.state import changes as c
from pinned.state.plan import Plan, write_freeze_steps


def _run_changes(steps, by_name: dict, on: bool) -> list[str]:
    """Apply freeze (on) or thaw (off) changes directly, each host at once; returns the hosts that failed."""

    def run(name: str, changes) -> str | None:
        host = by_name[name]
        for ch in changes:
            if ch.on:
                run_on(host, StringCommand("install", "-d", "-m", "0700", QuoteString(ch.undo.rsplit("/", 1)[0])))
                host.put_file(StringIO(undo_text(ch)), ch.undo, **host_arguments(host))
            command = (web_command(ch.on, ch.conf, ch.content, ch.marker, ch.undo) if isinstance(ch, c.WriteFreeze)
                       else database_command(ch.on, ch.user, ch.grant, ch.database, ch.undo))
            ok, _output = run_on(host, command)
            if not ok:
                return name
        return None

    wanted: dict[str, list] = {}
    for step in steps:
        if getattr(step.change, "on", None) is on:
            wanted.setdefault(step.host, []).append(step.change)
    jobs = [gevent.spawn(run, name, changes) for name, changes in wanted.items()]
    gevent.joinall(jobs)
    return [job.value for job in jobs if job.value]


@contextmanager
def writes_frozen(desired, schema: int, hosts, seconds: float = 10.0):
    """Refuse the site's writes to schema version `schema`'s database for the block (`pinned restore`):
    web hosts first (nginx, then their old workers drained), then the db host's guard; lifted after the
    block whatever happens in it (and by the lock's undo hooks if this process dies)."""
    steps = write_freeze_steps(desired, schema, seconds, "during the restore", "after the restore")
    by_name = {h.name: h for h in hosts}
    web = [s for s in steps if isinstance(s.change, c.WriteFreeze)]
    guard = [s for s in steps if isinstance(s.change, c.DatabaseGuard)]
    started = time.monotonic()
    try:
        failed = _run_changes(web, by_name, True) or _run_changes(guard, by_name, True)
        if failed:
            raise RuntimeError(f"could not freeze writes on {', '.join(failed)}")
        yield
    finally:
        failed = _run_changes(steps, by_name, False)
        if failed:
            print(f"pinned: error: could not lift the write freeze on {', '.join(failed)}", file=sys.stderr)
        else:
            print(f"pinned: write freeze lasted {time.monotonic() - started:.1f} s", flush=True)


def lift(plan: Plan, hosts) -> list[str]:
    """Lift the plan's write freeze on every host at once (its thaw changes); returns the hosts where it failed."""
    return _run_changes(plan.steps, {h.name: h for h in hosts}, False)


def _names(state, op_hash) -> set[str]:
    return state.get_op_meta(op_hash).names


class FreezeWatch(BaseStateCallback):
    """Follows a deploy's operations: when one fails while writes are frozen, lifts the freeze on every host
    before pyinfra stops (so the old release takes writes again at once); at the end of the thaw phase,
    prints how long the freeze lasted."""

    def __init__(self, plan: Plan, hosts):
        self.plan, self.hosts = plan, hosts
        self.started: float | None = None
        self.done = False
        self.thaw_slots = plan.width("thaw")
        self.thawed = 0

    def operation_start(self, state, op_hash):
        if self.started is None and any(n.startswith("+ write-freeze") for n in _names(state, op_hash)):
            self.started = time.monotonic()

    def operation_end(self, state, op_hash):
        names = _names(state, op_hash)
        if self.started is None or self.done:
            return
        if any(n.startswith(("- write-freeze", "- db-freeze", "(thaw:")) for n in names):
            self.thawed += 1
            if self.thawed >= self.thaw_slots:
                self.done = True
                print(f"pinned: write freeze lasted {time.monotonic() - self.started:.1f} s "
                      "(copy, migrate, health check, switch)", flush=True)

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        if self.started is None or self.done:
            return
        self.done = True
        failed = lift(self.plan, self.hosts)
        lasted = time.monotonic() - self.started
        if failed:
            print(f"pinned: error: could not lift the write freeze on {', '.join(failed)}: the lock's undo hook "
                  "lifts it when this run ends", file=sys.stderr, flush=True)
        else:
            print(f"pinned: {host.name} failed during the write freeze: lifted on every host after {lasted:.1f} s; "
                  "the current release takes writes again", file=sys.stderr, flush=True)
