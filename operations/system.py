"""System setup: packages, services, users, folders, secrets."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.operations import apt, files, server, systemd

from . import memory
from .scripts import run_py, run_sh


@operation()
def packages(packages: tuple[str, ...], update: bool = True, job: str = "", undo: str = ""):
    """Install Debian packages (apt update first, unless this run did it already), or wait for their install
    started in the background by `packages_start` (`job`)."""
    if job:
        yield run_sh("packages_wait.sh", job, undo)
    else:
        yield from apt.packages._inner(packages=list(packages), update=update)


def packages_start_command(packages: tuple[str, ...], job: str, undo: str) -> StringCommand:
    """Start installing packages in the background (remote/packages_start.sh), with the deploy lock's undo hook
    that holds the lock until the install ended if the run ends before waiting for it."""
    hook = run_sh("packages_hold.sh", job).get_raw_value()
    return run_sh("packages_start.sh", job, undo, hook, *packages)


@operation()
def packages_start(packages: tuple[str, ...], job: str, undo: str):
    """Start installing Debian packages in the background: what does not need them runs meanwhile; the
    `packages` step with the same job waits for them."""
    yield packages_start_command(packages, job, undo)


@operation()
def service(unit: str):
    """Start and enable a system service."""
    yield from systemd.service._inner(service=unit, running=True, enabled=True)


@operation()
def user(login: str, system: bool, home: str = "", keys: tuple[str, ...] = ()):
    """The app's system user and group (no login), or an extra login user with its SSH keys."""
    if system:
        yield from server.group._inner(group=login, system=True)
        yield from server.user._inner(user=login, group=login, home=home, shell="/usr/sbin/nologin",
                                      system=True, create_home=False)
    else:
        yield from server.user._inner(user=login, shell="/bin/bash", create_home=True,
                                      public_keys=list(keys), delete_keys=True)


@operation()
def directory(path: str, owner: str, group: str, mode: str):
    """A folder of the app root (root-owned: the app user cannot write its own code)."""
    yield from files.directory._inner(path=path, user=owner, group=group, mode=mode)


@operation()
def secrets_file(path: str, group: str, drop: tuple[str, ...] = (), generate: tuple[str, ...] = ()):
    """Generate the app's secrets on the server (root-owned, readable by the app's group), keeping the values
    it has; the names in `drop` (no longer declared) go, with their values."""
    yield run_sh("secrets_dir.sh", path, group)
    yield run_py("secrets_generate.py", path, group, *drop, *(f"+{name}" for name in generate))


@operation()
def secrets_read(path: str, memory_key: str):
    """Read the secrets file into the deploying machine's memory (never to its disk, never printed): `cat` on a
    channel of its own, not a file download (through sudo, pyinfra copies a download to /tmp for every user)."""
    yield memory.read_into(memory_key, StringCommand("cat", "--", QuoteString(path)))


@operation()
def secrets_copy(path: str, group: str, memory_key: str):
    """Write the db host's secrets (read into memory just before) on a web host: root-owned, 0640. Sent to the
    stdin of the script that writes them (not an upload: through sudo, pyinfra's uploads pass /tmp)."""
    yield run_sh("secrets_dir.sh", path, group)
    yield memory.write_from(memory_key, run_sh("secrets_receive.sh", path, group))
