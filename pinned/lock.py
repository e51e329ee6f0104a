"""The deploy lock: one run that changes an app's hosts at a time, held for exactly as long as that run lives.

On each host, the lock is a process tied to the run's connection: over its own channel of the host's SSH
connection (the one pyinfra already has), the run starts operations/remote/lock_hold.sh with the lock file
(state.layout.Layout.lock), its holder line and the heartbeat timeout. The script takes `flock -n` on the
lock file, writes the holder line into it (who: user@machine, pid, since, and its own `holder_pid`), says
`held …`, and then blocks reading its stdin. When the deploying process ends for any reason — success,
failure, a declined confirmation, SIGKILL — its connection closes, the script reads end of input and ends:
the flock goes, the lock file is removed. A cut network (no FIN ever reaches the host) is caught by the
heartbeat: this process sends a line every HEARTBEAT seconds from a gevent greenlet, and the holder gives
up after TIMEOUT seconds without one. There is no stale lock to take over, so nothing here guesses whether
a holder is dead.

A second run is refused at once, naming the holder; taking the lock is all hosts or none (when one host
refuses, the ones already taken are released). `release()` ends the hold explicitly (end of input, then
waiting for the holder to finish); every lock still held when this process exits normally is released by
an atexit handler, and otherwise the process's exit closes the connection. `pinned unlock` (unlock())
shows the holder and ends its holder process on the host (the lock file records its pid): for a run that is
still connected but hung.

The undo hooks — the contract for steps that must not outlive their run: a step that changes something a
dead run must not leave behind (the write freeze) writes a shell script that lifts it into
`<lock file>.undo.d/` (Layout.lock_undo(name); `<lock file>.undo` works too), and removes it once it lifted
the change itself. Just before the holder ends — whatever ended it, and while it still holds the flock, so
no other run can start in between — it runs each hook with sh (output to the system log, tag pinned-undo),
then removes it. Hooks left by a holder killed on the host itself are run when the lock is next taken, or
by `pinned unlock`.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from dataclasses import dataclass, field

import gevent

from pinned.operations.connection import command_line, run
from pinned.operations.lock import HOLD_SCRIPT, UNLOCK_SCRIPT
from pinned.operations.scripts import sh

HEARTBEAT = 10  # seconds between heartbeat lines
TIMEOUT = 45  # the holder gives up after this long without one (a cut network)
ANSWER = 30  # seconds to wait for a holder to say held/refused, and for it to end once released


class LockRefused(Exception):
    pass


class LockError(Exception):
    """The lock could not be taken for another reason than a holder (no SSH connection, the script failed)."""


def holder_line(user: str) -> str:
    return json.dumps({"by": f"{user}@{socket.gethostname()}", "pid": os.getpid(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, sort_keys=True)


def describe(held: str) -> str:
    try:
        h = json.loads(held)
        return f"{h['by']} (pid {h['pid']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return held.strip() or "unknown"


@dataclass
class _Hold:
    """One host's holder: its channel's files and the line it wrote."""

    host: object
    stdin: object
    stdout: object
    stderr: object
    line: str = ""


@dataclass
class DeployLock:
    """The lock held on every host of a run; `lines[host name]` is what each host's lock file says."""

    path: str
    ours: str
    holds: list[_Hold] = field(default_factory=list)
    heartbeat: gevent.Greenlet | None = None

    @property
    def lines(self) -> dict[str, str]:
        return {h.host.name: h.line for h in self.holds}


_held: list[DeployLock] = []


def _command(host, path: str, ours: str) -> str:
    """The holder's command line as pyinfra would run it on this host (sudo and the like from its data)."""
    return command_line(host, sh(HOLD_SCRIPT, path, ours, str(TIMEOUT)))


def _start(host, path: str, ours: str) -> tuple[_Hold, str | None]:
    """Start the holder on `host`: (its hold, None) when taken, (hold, their line) when refused."""
    client = getattr(host.connector, "client", None)
    if client is None or not hasattr(client, "exec_command"):
        raise LockError(f"{host.name}: the deploy lock needs an SSH connection (connector "
                        f"{type(host.connector).__name__})")
    stdin, stdout, stderr = client.exec_command(_command(host, path, ours))
    hold = _Hold(host, stdin, stdout, stderr)
    with gevent.Timeout(ANSWER, LockError(f"{host.name}: the lock holder did not answer in {ANSWER} s")):
        said = stdout.readline()
    if said.startswith("held "):
        hold.line = said[5:].rstrip("\n")
        return hold, None
    if said.startswith("refused "):
        return hold, said[8:].rstrip("\n")
    error = b""
    with gevent.Timeout(ANSWER, False):
        error = stderr.read()
    error = (error.decode(errors="replace") if isinstance(error, bytes) else error).strip()
    stdout.channel.close()
    raise LockError(f"{host.name}: cannot take the deploy lock {path}: {error or said.strip() or 'no answer'}")


def _beat(lock: DeployLock) -> None:
    """Every HEARTBEAT seconds, one line to each holder (a holder that is gone is left alone)."""
    while True:
        gevent.sleep(HEARTBEAT)
        for hold in lock.holds:
            try:
                hold.stdin.write("\n")
                hold.stdin.flush()
            except Exception:  # noqa: BLE001 — its channel closed: the holder has ended, nothing to keep
                pass


def _end(hold: _Hold, wait: bool = True) -> None:
    """End one holder: end of input, then (`wait`) wait, bounded, until it has removed the lock and exited."""
    channel = hold.stdout.channel
    transport = channel.get_transport()
    if channel.closed or transport is None or not transport.is_active():
        return  # the connection is closed (pyinfra disconnected): the holder has read its end of input
    try:
        channel.shutdown_write()
        if wait:
            with gevent.Timeout(ANSWER, False):
                channel.recv_exit_status()
    except Exception:  # noqa: BLE001 — the connection is gone already: so is the holder
        pass
    finally:
        channel.close()


def _on_all(items, work) -> list:
    jobs = [gevent.spawn(work, item) for item in items]
    gevent.joinall(jobs)
    errors = [job.exception for job in jobs if job.exception is not None]
    if errors:
        raise errors[0]
    return [job.value for job in jobs]


def acquire(hosts, path: str, ours: str, app: str) -> DeployLock:
    """Take the lock on every host, or on none: a holder anywhere refuses the run at once, naming it."""
    lock = DeployLock(path, ours)
    jobs = [gevent.spawn(_start, h, path, ours) for h in hosts]
    gevent.joinall(jobs)
    refused = []
    for job in jobs:
        if job.successful():
            hold, theirs = job.value
            if theirs is None:
                lock.holds.append(hold)
            else:
                refused.append((hold.host, theirs))
                hold.stdout.channel.close()
    failed = [job.exception for job in jobs if job.exception is not None]
    if refused or failed:
        release(lock)
        if failed:
            raise failed[0]
        host, held = refused[0]
        raise LockRefused(
            f"{host.name}: {app} is being deployed by {describe(held)}. Wait for it to finish; if that run "
            f"is hung, `pinned unlock --env <env>` ends its lock after showing it.")
    lock.heartbeat = gevent.spawn(_beat, lock)
    _held.append(lock)
    return lock


def release(lock: DeployLock | None, wait: bool = True) -> None:
    """Release the lock on every host where it is held (idempotent); with `wait`, return once every holder
    has ended (its undo hook run, the lock file removed)."""
    if lock is None:
        return
    if lock.heartbeat is not None:
        lock.heartbeat.kill(block=False)
        lock.heartbeat = None
    holds, lock.holds = lock.holds, []
    _on_all(holds, lambda hold: _end(hold, wait))
    if lock in _held:
        _held.remove(lock)


@atexit.register
def _release_at_exit() -> None:
    """A run that ends normally (done, failed, declined) sends its holders end of input. Not waited for: at
    exit pyinfra's connection greenlets no longer read, and the process's exit closes the connections
    anyway (a holder ends within milliseconds of either)."""
    for lock in list(_held):
        try:
            release(lock, wait=False)
        except Exception:  # noqa: BLE001 — exiting anyway: the closing connection ends the holders
            pass


def unlock(host, path: str) -> tuple[str | None, str]:
    """End the holder of the lock on `host` (`pinned unlock`): (the holder line it had, or None when no lock
    was held; what was done: "ended <pid>", "killed <pid>" or "stale")."""
    ok, output = run(host, sh(UNLOCK_SCRIPT, path))
    lines = output.stdout.splitlines()
    if not ok:
        raise LockError(f"{host.name}: unlocking {path} failed: {output.stderr.strip() or output.stdout.strip()}")
    if not lines:
        return None, ""
    return lines[0], lines[-1] if len(lines) > 1 else ""
