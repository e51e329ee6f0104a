"""A project pinned did not write: a stock Wagtail site, as `wagtail start` makes it (Wagtail's own project
template, at the version pip gives today), with third-party apps bringing their own migrations (data
migrations included) and static files, a settings package (`mysite.settings.production`) and
ManifestStaticFilesStorage. Nothing but a state file written by `pinned init`: it deploys, switches to a
code-only change and rolls back. Debian 13: its requirements (Django 6.1) need Python >= 3.12."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, http_get
from pinned.sandbox import core

pytestmark = pytest.mark.sandbox

PINNED = str(ROOT / ".venv" / "bin" / "pinned")
WAGTAIL = "wagtail>=8.0,<8.1"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def wagtail_start(work: Path) -> Path:
    """What `wagtail start mysite` writes (Django's startproject with Wagtail's project template), committed."""
    subprocess.run([str(ROOT / ".venv" / "bin" / "pip"), "download", "-q", "--no-deps", "-d", str(work / "dl"),
                    WAGTAIL], check=True, capture_output=True)
    wheel = next((work / "dl").glob("wagtail-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(work / "wagtail", [n for n in z.namelist() if n.startswith("wagtail/project_template/")])
    repo = work / "mysite"
    repo.mkdir()
    subprocess.run([str(ROOT / ".venv" / "bin" / "django-admin"), "startproject", "--template",
                    str(work / "wagtail" / "wagtail" / "project_template"), "--ext", "html,rst,py",
                    "--name", "Dockerfile", "mysite", str(repo)], check=True, capture_output=True)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "wagtail start mysite")
    return repo


def pinned(deploy: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run([PINNED, "--env", "production", *args], cwd=deploy, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode in (0, 2), f"pinned {' '.join(args)} ({proc.returncode}):\n{proc.stdout[-4000:]}\n" \
                                      f"{proc.stderr[-3000:]}"
    return proc


def test_a_stock_wagtail_site_deploys_switches_and_rolls_back(sandbox, tmp_path):
    host = sandbox.host("wagtail")
    box = core.Sandbox.load()
    repo = wagtail_start(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    deploy = repo / "deploy"
    deploy.mkdir()
    init = pinned(deploy, "init", "--host", host.address, "--ssh-user", "root", "--ssh-key", box.ssh_key)
    state_file = deploy / "production.yaml"
    state_file.write_text(state_file.read_text().replace("ssh:\n", "ssh:\n  host_key_checking: no\n", 1))
    state = yaml.safe_load(state_file.read_text())
    assert state["django"]["settings"] == "mysite.settings.production", init.stdout
    assert "wsgi" not in state["django"]  # the project's WSGI_APPLICATION, found when gunicorn starts

    pinned(deploy, "deploy", "-y")
    home = http_get(f"http://{host.address}/")
    assert home.status == 200 and "Welcome to your new Wagtail site" in home.body, home.body[:500]
    # ManifestStaticFilesStorage: the page names hashed files, which nginx serves from the release's assets.
    css = re.findall(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', home.body)
    assert css, home.body[:2000]
    asset = http_get(f"http://{host.address}{css[0]}")
    assert asset.status == 200 and asset.headers.get("Content-Type", "").startswith("text/css")
    login = http_get(f"http://{host.address}/admin/login/")
    assert login.status == 200 and "csrfmiddlewaretoken" in login.body
    # Wagtail's own data migration made the site's root page: the rows are in the schema version's database.
    pages = sandbox.ssh("wagtail", "mysql -N -B -e 'SELECT COUNT(*) FROM mysite_v0.wagtailcore_page'").stdout
    assert int(pages.strip()) >= 2

    welcome = repo / "home" / "templates" / "home" / "welcome_page.html"
    welcome.write_text(welcome.read_text().replace("Welcome to your new Wagtail site", "Welcome to Our Site", 1))
    git(repo, "commit", "-qam", "our own heading")
    pinned(deploy, "pin", "HEAD")
    pinned(deploy, "deploy", "-y")
    assert "Welcome to Our Site" in http_get(f"http://{host.address}/").body

    pinned(deploy, "pin", first)
    plan = pinned(deploy, "plan")
    assert "release /srv/mysite/versions/" not in plan.stdout and "current" in plan.stdout, plan.stdout
    pinned(deploy, "deploy", "-y")
    assert "Welcome to your new Wagtail site" in http_get(f"http://{host.address}/").body
