"""End to end, the one test that starts from a bare Debian 12 image: packages, users, MariaDB, nginx,
the app — everything installed by one run of `pyinfra inventory.py deploy.py`."""

from __future__ import annotations

import re

import pytest

from conftest import Env, http_get

pytestmark = pytest.mark.sandbox


def test_one_run_sets_up_a_bare_server(sandbox, commits, tmp_path):
    host = sandbox.host("bare", image="base")
    before = sandbox.ssh("bare", "dpkg-query -W nginx mariadb-server python3-venv", check=False)
    assert before.returncode != 0  # really bare
    env = Env("fresh", tmp_path, ["bare"], release=commits["A"]["commit"],
              packages=["htop"],
              users=[{"name": "deploy",
                      "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTests deploy@ci"],
                      "sudo": True}])
    plan = env.pyinfra("--dry")
    assert re.search(r"\+ packages nginx mariadb-server python3-venv htop", plan.stdout)
    env.deploy()
    page = http_get(f"http://{host.address}/")
    assert page.status == 200 and "Release: A" in page.body and "<li>Tomato</li>" in page.body
    keys = sandbox.ssh("bare", "cat ~deploy/.ssh/authorized_keys; cat /etc/sudoers.d/pinned-deploy; "
                               "systemctl is-enabled nginx mariadb").stdout
    assert "AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTests" in keys and "deploy ALL=(ALL) NOPASSWD:ALL" in keys
    assert keys.split()[-2:] == ["enabled", "enabled"]
    assert "No changes." in env.pyinfra("--dry").stdout
