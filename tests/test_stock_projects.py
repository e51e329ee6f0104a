"""Projects pinned did not write, each at the version pip gives today, with third-party apps bringing their own
migrations (data migrations included) and static files, and a settings package:
- a stock Wagtail site, as `wagtail start` makes it (Wagtail's own project template; `mysite.settings.production`,
  ManifestStaticFilesStorage);
- a stock Wagtail CRX site, as `coderedcms start` makes it (`mysite.settings.prod`, Django 5.2, a dozen
  third-party apps; a file-based page cache at BASE_DIR / "cache", which the state file makes a `scratch:`
  folder).
Nothing but a state file written by `pinned init` (and, for CRX, the lines a user adds): each deploys, switches
to a code-only change and rolls back. Debian 13: Wagtail's requirements (Django 6.1) need Python >= 3.12."""

from __future__ import annotations

import os
import re
import shlex
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
CRX = ("coderedcms>=6.0,<6.1", "wagtail>=7.0,<8.0")  # what coderedcms 6.0 requires


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


def coderedcms_start(work: Path) -> Path:
    """What `coderedcms start mysite` writes, committed: CRX's own command (from its wheel; it reads Wagtail's
    version for the requirements file, so Wagtail's package is beside it), with the test's Django."""
    subprocess.run([str(ROOT / ".venv" / "bin" / "pip"), "download", "-q", "--no-deps", "-d", str(work / "dl"),
                    *CRX], check=True, capture_output=True)
    for wheel in (work / "dl").glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(work / "lib", [n for n in z.namelist() if n.startswith(("coderedcms/", "wagtail/"))])
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c",
                    "import sys; from coderedcms.bin.coderedcms import main; sys.argv[0] = 'coderedcms'; main()",
                    "start", "mysite"], cwd=work, env={**os.environ, "PYTHONPATH": str(work / "lib")}, check=True,
                   capture_output=True)
    repo = work / "mysite"
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "coderedcms start mysite")
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


def test_a_stock_crx_site_deploys_switches_and_rolls_back(sandbox, tmp_path):
    host = sandbox.host("crx")
    box = core.Sandbox.load()
    repo = coderedcms_start(tmp_path)
    assert "coderedcms==6.0.*" in (repo / "requirements.txt").read_text()
    first = git(repo, "rev-parse", "HEAD")
    deploy = repo / "deploy"
    deploy.mkdir()
    init = pinned(deploy, "init", "--host", host.address, "--ssh-user", "root", "--ssh-key", box.ssh_key)
    state_file = deploy / "production.yaml"
    state = yaml.safe_load(state_file.read_text())
    assert state["django"]["settings"] == "mysite.settings.prod", init.stdout  # manage.py says .dev
    assert "wsgi" not in state["django"]
    # What a user adds: CRX's production cache writes BASE_DIR / "cache" (inside the read-only release), and
    # its MEDIA_ROOT is BASE_DIR / "media": the one a scratch folder, the other the persistent uploads.
    state["ssh"]["host_key_checking"] = "no"
    state["scratch"] = ["cache"]
    state["shared"] = [{"name": "media", "link": "media"}]
    state["site"]["media_url"] = "/media/"
    # The old release stops at the switch (not kept warm), so its scratch folder goes with it and the rollback
    # below starts it afresh; a warm release keeps its folder until it stops.
    state["keep_warm"] = "0"
    state_file.write_text(yaml.safe_dump(state, sort_keys=False))

    plan = pinned(deploy, "plan")
    rid = re.search(r"release /srv/mysite/versions/0/(\S+)", plan.stdout).group(1)
    assert f"links cache → /var/cache/pinned-mysite/{rid}/cache, media → /srv/mysite/shared/media" in plan.stdout, \
        plan.stdout
    pinned(deploy, "deploy", "-y")
    home = http_get(f"http://{host.address}/")
    assert home.status == 200 and re.search(r"<title>[^<]*Home", home.body) and "website/css/custom.css" in home.body, \
        home.body[:1000]
    # wagtail-cache keeps the page in the file cache: written through the link, in the release's scratch folder.
    again = http_get(f"http://{host.address}/")
    assert again.headers.get("X-Wagtail-Cache") == "hit", again.headers
    current = sandbox.ssh("crx", "readlink -f /srv/mysite/current").stdout.strip()
    links = sandbox.ssh("crx", f"readlink {current}/cache {current}/media").stdout.split()
    assert links == [f"/var/cache/pinned-mysite/{rid}/cache", "/srv/mysite/shared/media"], links
    cached = sandbox.ssh("crx", f"find /var/cache/pinned-mysite/{rid}/cache -type f | wc -l").stdout
    assert int(cached) >= 1
    # Third-party static files (CRX's own, Wagtail's), named by the page, served by nginx from the release.
    assets = re.findall(r'(?:href|src)="(/static/coderedcms/[^"?]+)', home.body)
    assert assets, home.body[:3000]
    asset = http_get(f"http://{host.address}{assets[0]}")
    on_disk = sandbox.ssh("crx", f"cat /srv/mysite/current/assets/{assets[0].removeprefix('/static/')}").stdout
    assert asset.status == 200 and asset.body == on_disk and asset.headers.get("Cache-Control") == "max-age=3600"
    admin_js = http_get(f"http://{host.address}/static/wagtailadmin/js/core.js")
    assert admin_js.status == 200 and admin_js.headers.get("Cache-Control") == "max-age=3600"
    login = http_get(f"http://{host.address}/admin/login/")
    assert login.status == 200 and "csrfmiddlewaretoken" in login.body
    # Third-party migrations ran (CRX's, its apps'), and the project's data migration made its home page.
    query = ("SELECT COUNT(DISTINCT app) FROM mysite_v0.django_migrations WHERE app IN "
             "('coderedcms', 'wagtailcache', 'wagtailseo', 'taggit', 'wagtailforms'); "
             "SELECT COUNT(*) FROM mysite_v0.website_webpage")
    apps, pages = sandbox.ssh("crx", f"mysql -N -B -e {shlex.quote(query)}").stdout.split()
    assert int(apps) >= 3 and int(pages) == 1, (apps, pages)

    # A code change: the new release has its own cache, so its page is not the old release's cached one (with
    # one cache for both, its health check on / would already have read the old page from it).
    base = repo / "website" / "templates" / "coderedcms" / "pages" / "base.html"
    base.write_text(base.read_text().replace("{% block custom_assets %}",
                                             '{% block custom_assets %}\n<meta name="made-by" content="us">', 1))
    git(repo, "commit", "-qam", "our own meta tag")
    pinned(deploy, "pin", "HEAD")
    pinned(deploy, "deploy", "-y")
    switched = http_get(f"http://{host.address}/")
    assert switched.status == 200 and 'content="us"' in switched.body, switched.body[:1000]
    gone = sandbox.ssh("crx", f"test -e /var/cache/pinned-mysite/{rid}", check=False)
    assert gone.returncode == 1  # the old release stopped: its scratch folder went with it
    # Something left in its folder while it is stopped is gone when it starts again (the rollback).
    sandbox.ssh("crx", f"install -d -o mysite /var/cache/pinned-mysite/{rid}/cache && "
                       f"touch /var/cache/pinned-mysite/{rid}/cache/stale.djcache")

    pinned(deploy, "pin", first)
    plan = pinned(deploy, "plan")
    assert "release /srv/mysite/versions/" not in plan.stdout and "current" in plan.stdout, plan.stdout
    pinned(deploy, "deploy", "-y")
    back = http_get(f"http://{host.address}/")
    assert back.status == 200 and 'content="us"' not in back.body and re.search(r"<title>[^<]*Home", back.body)
    left = sandbox.ssh("crx", f"ls /var/cache/pinned-mysite/{rid}/cache").stdout.split()
    assert "stale.djcache" not in left and left, left  # emptied at the start, then the page cached again
