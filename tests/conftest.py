"""Shared fixtures: the example repository, and sandbox hosts for end-to-end tests.

End-to-end tests boot real Debian hosts (systemd-nspawn, systemd as PID 1, sshd, nginx, MariaDB) under
their own prefix (PINNED_TEST_PREFIX, default `ptest`) so they never touch the demo's hosts, and deploy
to them over SSH with `pyinfra inventory.py deploy.py`, exactly as a user does.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT / ".build" / "agroguia"
# `make test` runs the modules on two pytest-xdist workers (one module per worker at a time: --dist loadfile);
# each worker boots its hosts under its own prefix (ptest0, ptest1), so their hosts, subnets and `down` never meet.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
PREFIX = os.environ.get("PINNED_TEST_PREFIX", "ptest") + WORKER.removeprefix("gw")
os.environ["PINNED_SANDBOX_PREFIX"] = PREFIX
# The Debian suite of test hosts (Debian 13; PINNED_TEST_SUITE=bookworm runs the suite on Debian 12).
SUITE = os.environ.get("PINNED_TEST_SUITE", "trixie")
sys.path.insert(0, str(ROOT))

from pinned.sandbox import core  # noqa: E402


def sandbox_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, mounts, systemd-nspawn): `make test` runs it as root"
    for tool in ("systemd-nspawn", "debootstrap", "iptables"):
        if not shutil.which(tool):
            return f"needs {tool} (`make deps` installs it)"
    return None


@pytest.fixture(scope="session")
def commits() -> dict[str, dict[str, str]]:
    """Tag -> {commit, time} of the example repository (built once, deterministic)."""
    REPO.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: the xdist workers each ask, and a rebuild (after a release was added) removes the
    # folder first.
    with open(REPO.parent / ".agroguia.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "build_repo.py"), "--json", str(REPO)],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class Sandbox:
    """Boots hosts on demand (kept for the whole session) and stops them all at the end."""

    def __init__(self):
        self.booted: dict[str, core.HostInfo] = {}

    def host(self, name: str, roles=("web", "db"), image: str = "warm", suite: str = SUITE) -> core.HostInfo:
        if name not in self.booted:
            sb = core.up([(name, list(roles))], image=image, suite=suite)
            for h in sb.hosts:
                if h.name == name:
                    self.booted[name] = h
        return self.booted[name]

    def hosts(self, specs: list[tuple[str, tuple[str, ...]]], image: str = "warm",
              suite: str = SUITE) -> list[core.HostInfo]:
        missing = [(n, list(r)) for n, r in specs if n not in self.booted]
        if missing:
            sb = core.up(missing, image=image, suite=suite)
            for h in sb.hosts:
                self.booted.setdefault(h.name, h)
        return [self.booted[n] for n, _ in specs]

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        sb = core.Sandbox.load()
        host = self.booted[name]
        return subprocess.run(["ssh", *core.ssh_options(sb.ssh_key), f"root@{host.address}", command],
                              capture_output=True, text=True, check=check)

    def popen_ssh(self, name: str, command: str) -> subprocess.Popen:
        """`command` on the host, started and left running (its stdout a pipe)."""
        sb = core.Sandbox.load()
        return subprocess.Popen(["ssh", *core.ssh_options(sb.ssh_key), f"root@{self.booted[name].address}",
                                 command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


_SESSION_BOX: list[Sandbox] = []  # the session's sandbox, once a test has asked for it


@pytest.fixture(scope="session")
def sandbox():
    reason = sandbox_unavailable()
    if reason:
        pytest.skip(reason)
    core.down()  # hosts a killed run of this prefix left behind would hold another run's state
    box = Sandbox()
    _SESSION_BOX.append(box)
    yield box
    core.down()


@pytest.fixture(scope="module", autouse=True)
def hosts_stop_with_their_module():
    """The hosts a module booted stop after its last test (each module names its own): kept for the whole
    session, a worker's finished modules held dozens of hosts (MariaDB, gunicorn, warm releases) and starved
    the ones still testing of memory and CPU."""
    before = set(_SESSION_BOX[0].booted) if _SESSION_BOX else set()
    yield
    if _SESSION_BOX:
        box = _SESSION_BOX[0]
        mine = [name for name in box.booted if name not in before]
        if mine:
            core.down(mine)
            for name in mine:
                del box.booted[name]


@dataclass
class HttpResponse:
    status: int
    headers: dict
    body: str


def http_get(url: str, host_header: str | None = None, timeout: float = 10) -> HttpResponse:
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResponse(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, dict(exc.headers), exc.read().decode(errors="replace"))


def failure_summary(proc: subprocess.CompletedProcess) -> str:
    """The lines that say what failed (errors and the failing host's output), then the output's tail."""
    lines = (proc.stdout + proc.stderr).splitlines()
    wanted = [line for line in lines if re.search(r"rror|Traceback|pinned:|failed|Starting operation", line)
              and "Success" not in line]
    return "\n".join(wanted[-60:]) + "\n--- last lines ---\n" + "\n".join(lines[-40:])


class Env:
    """One environment (state file in a temporary folder) deployed to chosen sandbox hosts."""

    def __init__(self, name: str, state_dir: Path, hosts: list[str], **state):
        self.name, self.state_dir, self.hosts = name, state_dir, hosts
        self.environ: dict[str, str] = {}  # more environment for its commands (e.g. PINNED_CACHE)
        self.state = {
            "app": "agroguia",
            "repository": str(REPO),
            "django": {"settings": "agroguia.settings"},
            "hosts": "sandbox",
            "site": {"health_url": "/health/"},
            **state,
        }
        self.write()

    @property
    def path(self) -> Path:
        return self.state_dir / f"{self.name}.yaml"

    def write(self, **changes) -> None:
        self.state.update(changes)
        self.path.write_text(yaml.safe_dump(self.state, sort_keys=False))

    def pyinfra(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        env = {**os.environ, "PINNED_STATE_DIR": str(self.state_dir), "PINNED_SANDBOX_PREFIX": PREFIX,
               **self.environ}
        limit = [a for h in self.hosts for a in ("--limit", h)]
        cmd = [str(ROOT / ".venv" / "bin" / "pyinfra"), *limit, "inventory.py", "deploy.py",
               "--data", f"env={self.name}", *args]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"pyinfra failed ({proc.returncode}):\n{failure_summary(proc)}")
        return proc

    def pinned(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The `pinned` command for this environment, limited to its hosts."""
        env = {**os.environ, "PINNED_STATE_DIR": str(self.state_dir), "PINNED_SANDBOX_PREFIX": PREFIX,
               **self.environ}
        limit = [a for h in self.hosts for a in ("--limit", h)]
        cmd = [str(ROOT / ".venv" / "bin" / "pinned"), "--env", self.name, *limit, *args]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if check and proc.returncode not in (0, 2):
            raise AssertionError(f"pinned {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def reload(self) -> None:
        self.state = yaml.safe_load(self.path.read_text())

    def deploy(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.pyinfra("-y", *args, check=check)


@pytest.fixture
def make_env(tmp_path):
    def make(name: str, hosts: list[str], **state) -> Env:
        return Env(name, tmp_path, hosts, **state)
    return make


# Modules by their measured time (the table `make test` prints at its end), slowest first: the two workers take
# modules in this order, so the long ones start early and the short ones fill the gaps at the end.
SLOWEST_FIRST = [
    "test_stock_projects", "test_fresh_server", "test_faults", "test_own_servers", "test_rollout",
    "test_processes", "test_tls", "test_previews_e2e", "test_writes_under_load", "test_keep_warm",
    "test_write_freeze", "test_zero_downtime", "test_schema_versions", "test_safety",
    "test_site_config", "test_backups", "test_shared_media", "test_saved_plan", "test_environments",
    "test_installed", "test_django6", "test_shallow_clone", "test_rollback", "test_differential",
    "test_first_deploy",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}

    def order(item):
        name = item.module.__name__.rpartition(".")[2] if item.module else ""
        on_hosts = item.get_closest_marker("sandbox") is not None
        return rank.get(name, len(rank) if on_hosts else len(rank) + 1)

    items.sort(key=order)  # stable: a module's tests keep their order


_module_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    module = report.nodeid.split("::")[0]
    _module_seconds[module] = _module_seconds.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """Seconds per module (setup, call and teardown of its tests): what SLOWEST_FIRST is ordered by."""
    slow = sorted(((s, m) for m, s in _module_seconds.items() if s >= 5), reverse=True)
    if slow:
        terminalreporter.section("seconds per module (5 s or more)")
        for seconds, module in slow:
            terminalreporter.write_line(f"{seconds:8.1f}  {module}")
