"""End to end, the test that starts from a bare image, on each Debian the sandbox builds (12 and 13):
packages, users, MariaDB, nginx, the app — everything installed by one run of `pyinfra inventory.py
deploy.py`, after a first run killed while nginx and MariaDB installed in the background (the install runs to
its end with the deploy lock held; the next run goes on from there)."""

from __future__ import annotations

import re

import pytest
from test_faults import Run, until_on_host

from conftest import Env, http_get
from pinned.sandbox import core

pytestmark = pytest.mark.sandbox

DEBIAN = {"bookworm": ("12", "3.11"), "trixie": ("13", "3.13")}


@pytest.mark.parametrize("suite", core.SUITES)
def test_one_run_sets_up_a_bare_server(sandbox, commits, tmp_path, suite):
    name = f"bare{DEBIAN[suite][0]}"
    host = sandbox.host(name, image="base", suite=suite)
    release = sandbox.ssh(name, "cat /etc/debian_version; python3 -c 'import sys; print(sys.version)'").stdout
    assert release.split()[0].startswith(DEBIAN[suite][0] + ".") and release.split()[1].startswith(DEBIAN[suite][1])
    before = sandbox.ssh(name, "dpkg-query -W nginx mariadb-server python3-venv", check=False)
    assert before.returncode != 0  # really bare
    env = Env("fresh", tmp_path, [name], release=commits["A"]["commit"],
              packages=["htop"],
              users=[{"name": "deploy",
                      "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTests deploy@ci"],
                      "sudo": True}])
    plan = env.pyinfra("--dry")
    assert re.search(r"\+ packages python3-venv\b", plan.stdout)  # first: the virtualenv's build needs it
    assert re.search(r"\+ packages-start nginx mariadb-server htop", plan.stdout)  # then in the background
    assert re.search(r"\+ packages nginx mariadb-server htop", plan.stdout)  # waited for
    # A run killed while nginx and MariaDB install in the background: dpkg is never stopped half-way — the
    # install runs to its end and the deploy lock stays held until it did (packages_hold.sh) — and the next
    # run sets the server up from there.
    run = Run(env)
    run.wait_line(r"Starting operation: \+ packages-start")
    job = "/run/pinned-agroguia-packages"
    until_on_host(sandbox, name, f"test -s {job}/pid && pgrep -x dpkg >/dev/null", timeout=300)
    run.kill()
    held = sandbox.ssh(name, f"pid=$(cat {job}/pid); kill -0 $pid || exit 2; while kill -0 $pid 2>/dev/null; do "
                             f"test -e /run/lock/pinned-agroguia.lock || exit 1; sleep 0.05; done; cat {job}/status",
                       check=False)
    assert held.returncode == 0, f"the install had ended before the kill, or the lock before it ({held.returncode})"
    assert held.stdout.split()[-1] == "0"  # apt-get ran to its end, successfully
    env.deploy()
    page = http_get(f"http://{host.address}/")
    assert page.status == 200 and "Release: A" in page.body and "<li>Tomato</li>" in page.body
    keys = sandbox.ssh(name, "cat ~deploy/.ssh/authorized_keys; cat /etc/sudoers.d/pinned-deploy; "
                             "systemctl is-enabled nginx mariadb").stdout
    assert "AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTests" in keys and "deploy ALL=(ALL) NOPASSWD:ALL" in keys
    assert keys.split()[-2:] == ["enabled", "enabled"]
    venv_python = sandbox.ssh(name, "/srv/agroguia/current/.venv/bin/python -V").stdout
    assert venv_python.startswith(f"Python {DEBIAN[suite][1]}.")
    assert "No changes." in env.pyinfra("--dry").stdout
