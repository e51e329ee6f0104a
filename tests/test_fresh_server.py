"""End to end, the test that starts from a bare image, on each Debian the sandbox builds (12 and 13):
packages, users, MariaDB, nginx, the app — everything installed by one run of `pyinfra inventory.py
deploy.py`."""

from __future__ import annotations

import re

import pytest

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
    assert re.search(r"\+ packages nginx mariadb-server python3-venv htop", plan.stdout)
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
