"""End to end: uploads live in a shared folder (`shared: [media]`), outside every release.

A stock Django project (`django-admin startproject`) with an upload view saving through Django's default
storage (MEDIA_ROOT: pinned's settings module points it at /srv/<app>/shared/media). A file uploaded through
the app is served by nginx at `site.media_url` with safe headers (nosniff, a sandboxing CSP: an uploaded page
runs no script), and survives a code-only deploy, a schema change (a new app with a migration: the database
is copied) and a rollback; the app can write there after each switch; `site.max_body` bounds an upload.
`pinned backup` keeps the folder too: a deleted upload comes back with `pinned restore`.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, Env, http_get

pytestmark = pytest.mark.sandbox
HOST = "sitemed"
APP = "mysite"

URLS = '''
from django.core.files.storage import default_storage
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

RELEASE = "{release}"


@csrf_exempt
def upload(request):
    name = default_storage.save("uploads/" + request.FILES["file"].name, request.FILES["file"])
    return HttpResponse(default_storage.url(name), status=201, content_type="text/plain")


def health(request):
    return HttpResponse("Release: " + RELEASE)


urlpatterns = [path("upload/", upload), path("health/", health)]
'''

MODELS = '''
from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=100)
'''

MIGRATION = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(name="Note", fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("text", models.CharField(max_length=100)),
        ]),
    ]
'''


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True, text=True).stdout


def commit(project: Path, message: str) -> str:
    git(project, "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)
    return git(project, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """U1: an upload view; U2: a code-only change; U3: a new app with a migration (a schema change)."""
    project = tmp_path_factory.mktemp("media") / "mysite"
    project.mkdir()
    subprocess.run([str(ROOT / ".venv" / "bin" / "django-admin"), "startproject", "mysite", str(project)],
                   check=True)
    (project / "requirements.txt").write_text("Django>=5.2,<5.3\n")
    urls = project / "mysite" / "urls.py"
    git(project, "init", "-q", "-b", "main")
    commits = {}
    urls.write_text(URLS.format(release="U1"))
    commits["U1"] = commit(project, "upload view")
    urls.write_text(URLS.format(release="U2"))
    commits["U2"] = commit(project, "code-only change")
    urls.write_text(URLS.format(release="U3"))
    (project / "notes" / "migrations").mkdir(parents=True)
    (project / "notes" / "__init__.py").write_text("")
    (project / "notes" / "migrations" / "__init__.py").write_text("")
    (project / "notes" / "models.py").write_text(MODELS)
    (project / "notes" / "migrations" / "0001_initial.py").write_text(MIGRATION)
    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS = [*INSTALLED_APPS, "notes"]\n')
    commits["U3"] = commit(project, "a notes app: a schema change")
    return project, commits


@pytest.fixture(scope="module")
def env(sandbox, project, tmp_path_factory):
    sandbox.host(HOST)
    path, commits = project
    return Env("media", tmp_path_factory.mktemp("state"), [HOST], app=APP, repository=str(path),
               release=commits["U1"], django={"settings": "mysite.settings"}, shared=["media"],
               site={"health_url": "/health/", "media_url": "/media/", "max_body": "1m"})


def base(sandbox) -> str:
    return f"http://{sandbox.booted[HOST].address}"


def upload(sandbox, name: str, content: bytes) -> tuple[int, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{base(sandbox)}/upload/", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def served(sandbox, url: str, content: bytes) -> None:
    with urllib.request.urlopen(base(sandbox) + url, timeout=10) as response:
        assert response.status == 200 and response.read() == content
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]


def release(sandbox) -> str:
    return http_get(base(sandbox) + "/health/").body


UPLOADS: dict[str, bytes] = {}


def upload_one(sandbox, tag: str) -> None:
    content = f"<script>alert('{tag}')</script>".encode()
    status, url = upload(sandbox, f"page-{tag}.html", content)
    assert status == 201, url
    assert url == f"/media/uploads/page-{tag}.html"
    UPLOADS[url] = content


def all_served(sandbox) -> None:
    assert UPLOADS
    for url, content in UPLOADS.items():
        served(sandbox, url, content)


def test_an_upload_is_written_to_the_shared_folder_and_served_by_nginx(env, sandbox):
    plan = env.pinned("plan", "--json")
    assert '"target": "/srv/mysite/shared/media"' in plan.stdout
    assert "client_max_body_size 1m" in plan.stdout and "location /media/" in plan.stdout
    env.deploy()
    assert release(sandbox) == "Release: U1"
    upload_one(sandbox, "u1")
    all_served(sandbox)
    owner = sandbox.ssh(HOST, "stat -c '%U:%G %a' /srv/mysite/shared/media "
                        "/srv/mysite/shared/media/uploads/page-u1.html").stdout.split("\n")
    assert owner[0] == "mysite:mysite 755" and owner[1].startswith("mysite:mysite "), owner
    status, _ = upload(sandbox, "big.bin", b"x" * (2 * 1024 * 1024))
    assert status == 413
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


@pytest.mark.parametrize("tag", ["U2", "U3", "U1"])
def test_uploads_survive_a_code_only_deploy_a_schema_change_and_a_rollback(env, sandbox, project, tag):
    env.write(release=project[1][tag])
    env.deploy()
    assert release(sandbox) == f"Release: {tag}"
    all_served(sandbox)
    upload_one(sandbox, f"{tag.lower()}-after")
    all_served(sandbox)
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
    # Still one folder, outside the releases.
    listing = sandbox.ssh(HOST, "ls /srv/mysite/shared/media/uploads").stdout.split()
    assert sorted(listing) == sorted(url.rsplit("/", 1)[1] for url in UPLOADS)


def test_a_backup_keeps_the_uploads_and_a_restore_puts_a_lost_one_back(env, sandbox, tmp_path):
    """`pinned backup` takes the web host's shared folders with the database; `--download` brings both here;
    a deleted upload comes back with `pinned restore <id>` (what was uploaded since stays)."""
    url = next(iter(UPLOADS))
    name = url.rsplit("/", 1)[1]
    taken = env.pinned("backup", "--download", str(tmp_path))
    shared_id = re.search(r"^(\d{8}T\d{6}Z-shared\.tar\.gz)\s", taken.stdout, re.M).group(1)
    assert re.search(r"^\d{8}T\d{6}Z-mysite_v\d+\.sql\.gz\s", taken.stdout, re.M), taken.stdout
    # The download: a complete archive of the folder, owners kept, here on this machine (0600: private data).
    archive = tmp_path / shared_id
    assert (archive.stat().st_mode & 0o777) == 0o600
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"media/uploads/{name}")
        assert tar.extractfile(member).read() == UPLOADS[url]
    on_host = sandbox.ssh(HOST, f"stat -c '%a %U' /var/backups/pinned/mysite/{shared_id}").stdout.split()
    assert on_host == ["600", "root"]
    listing = env.pinned("backups").stdout
    assert shared_id in listing and "shared folders: media" in listing

    # The file is lost (deleted on the host), another upload comes in after the backup.
    sandbox.ssh(HOST, f"rm /srv/mysite/shared/media/uploads/{name}")
    assert http_get(base(sandbox) + url).status == 404
    upload_one(sandbox, "after-backup")
    restored = env.pinned("restore", shared_id)
    assert re.search(r"restored \d+ files from " + re.escape(shared_id), restored.stdout), restored.stdout
    assert "backed up the shared folders of" in restored.stdout
    all_served(sandbox)  # the lost file is back (owner and content), the newer one is still there
    owner = sandbox.ssh(HOST, f"stat -c '%U:%G' /srv/mysite/shared/media/uploads/{name}").stdout.strip()
    assert owner == "mysite:mysite"
    upload_one(sandbox, "after-restore")  # the app can still write there
    all_served(sandbox)
