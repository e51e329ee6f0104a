"""pinned as a user installs it: the wheel into a fresh virtualenv outside the checkout, `pinned init` in
the user's own project folder, then `pinned plan` and `pinned deploy -y` from there to a server named by
its address. Nothing inside the pinned checkout is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ROOT, http_get
from pinned.sandbox import core

pytestmark = pytest.mark.sandbox

# What the checkout may hold that is not the source (made by make, pytest, the demo).
NOT_SOURCE = {".git", ".venv", ".build", ".cache", ".pytest_cache", ".hypothesis", ".ruff_cache", "build",
              "pinned.egg-info", "__pycache__", "bench"}


def checkout_snapshot() -> dict[str, int]:
    """Every source file of the checkout with its modification time."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in NOT_SOURCE]
        for name in filenames:
            path = Path(dirpath) / name
            files[str(path.relative_to(ROOT))] = path.lstat().st_mtime_ns
    return files


def run(cmd, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in (0, 2), f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the checkout, installed into a fresh venv: the `pinned` command."""
    before = checkout_snapshot()
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(*NOT_SOURCE - {"bench"}, "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source)], work)
    wheel = next((work / "dist").glob("pinned-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"pinned"}, f"the wheel installs other top-level names: {tops}"
    for needed in ("pinned/deploy.py", "pinned/inventory.py", "pinned/config.py", "pinned/templates/settings.py.j2",
                   "pinned/operations/remote/observe.py", "pinned/operations/remote/lib.sh", "pinned/state/plan.py"):
        assert needed in names, f"{needed} is not in the wheel"
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], work)
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], work)
    return venv / "bin" / "pinned", before


def test_installed_pinned_deploys_a_users_project_from_their_folder(sandbox, commits, installed, tmp_path):
    installed, checkout_before = installed
    host = sandbox.host("inst")
    box = core.Sandbox.load()
    project = tmp_path / "shop"
    subprocess.run(["git", "clone", "-q", str(REPO), str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "reset", "-q", "--hard", commits["A"]["commit"]], check=True)
    deploy = project / "deploy"
    deploy.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNED_")}
    env["HOME"] = str(tmp_path / "home")  # the release cache goes to ~/.cache/pinned: a cold one

    init = run([str(installed), "init", "--host", host.address, "--ssh-user", "root", "--ssh-key", box.ssh_key],
               deploy, env)
    assert "agroguia.settings" in init.stdout
    path = deploy / "production.yaml"
    # Sandbox hosts share one image's host keys: the one edit init cannot guess.
    path.write_text(path.read_text().replace("ssh:\n", "ssh:\n  host_key_checking: no\n", 1))
    state = yaml.safe_load(path.read_text())
    assert state["release"] == commits["A"]["commit"] and state["repository"] == ".."

    plan = run([str(installed), "--env", "production", "plan", "--detailed-exitcode"], deploy, env)
    assert plan.returncode == 2 and commits["A"]["commit"][:7] in plan.stdout, plan.stdout
    run([str(installed), "--env", "production", "deploy", "-y"], deploy, env, timeout=900)
    page = http_get(f"http://{host.address}/")
    assert page.status == 200 and "Release: A" in page.body
    again = run([str(installed), "--env", "production", "plan", "--detailed-exitcode"], deploy, env)
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout
    assert (tmp_path / "home" / ".cache" / "pinned" / "releases").is_dir()
    assert checkout_snapshot() == checkout_before, "the test wrote inside the pinned checkout"
