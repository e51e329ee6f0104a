"""`pinned init` in a user's project (a stock `django-admin startproject`, and the example app), and the
state file's JSON Schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pinned.init import app_name, guess, health_url, schema_text
from pinned.state.model import State, load_state

ROOT = Path(__file__).resolve().parent.parent
PINNED = str(ROOT / ".venv" / "bin" / "pinned")
DJANGO_ADMIN = str(ROOT / ".venv" / "bin" / "django-admin")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def stock_project(tmp_path: Path) -> Path:
    """A repository holding what `django-admin startproject mysite` writes (manage.py in mysite/)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    subprocess.run([DJANGO_ADMIN, "startproject", "mysite"], cwd=repo, check=True)
    (repo / "mysite" / "requirements.txt").write_text("Django>=5.2,<5.3\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "startproject")
    (repo / "deploy").mkdir()
    return repo


def test_init_finds_a_stock_project_and_writes_a_valid_commented_state_file(tmp_path):
    repo = stock_project(tmp_path)
    proc = subprocess.run([PINNED, "init", "--web", "www1.example.com", "--db", "db1.example.com",
                           "--ssh-user", "deploy"], cwd=repo / "deploy", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    path = repo / "deploy" / "production.yaml"
    state = load_state(path)
    assert state.app == "mysite" and state.django.settings == "mysite.settings"
    assert state.django.project_dir == "mysite" and state.django.requirements == "requirements.txt"
    assert state.repository == ".." and state.release == git(repo, "rev-parse", "HEAD")
    assert state.django.wsgi_app == "pinned_runtime:application" and state.site.static_url == "/static/"
    assert state.hosts.web == ["www1.example.com"] and state.hosts.db == "db1.example.com"
    assert state.ssh.user == "deploy"
    # A stock startproject routes only admin/: `/` answers 404 once DEBUG is off, the admin's login page 200.
    assert state.site.health_url == "/admin/login/" and "health_url: /admin/login/" in proc.stdout
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=pinned.schema.json\n") and text.count("\n# ") >= 5
    assert json.loads((repo / "deploy" / "pinned.schema.json").read_text()) == State.model_json_schema()
    for found in ("mysite.settings", "mysite", "requirements.txt", "(HEAD)"):
        assert found in proc.stdout
    again = subprocess.run([PINNED, "init"], cwd=repo / "deploy", capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr and path.read_text() == text


def test_init_proposes_the_root_page_as_health_url_when_the_project_routes_it(tmp_path):
    repo = stock_project(tmp_path)
    urls = repo / "mysite" / "mysite" / "urls.py"
    urls.write_text(urls.read_text().replace("path('admin/', admin.site.urls),",
                                             "path('admin/', admin.site.urls),\n    path('', admin.site.urls),"))
    assert "path('', admin.site.urls)" in urls.read_text()
    git(repo, "commit", "-qam", "a home page")
    proc = subprocess.run([PINNED, "init"], cwd=repo / "deploy", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert load_state(repo / "deploy" / "production.yaml").site.health_url == "/"
    assert "health_url" not in proc.stdout


@pytest.mark.parametrize("route, expected", [
    ('path("admin/", admin.site.urls)', "/admin/login/"),
    ("path('backoffice/', admin.site.urls)", "/backoffice/login/"),
    ('path("", include(wagtail_urls))', "/"),
    ("re_path(r'^$', views.home)", "/"),
    ('path("shop/", include("shop.urls"))', None),
])
def test_health_url_guess_reads_the_root_urlconf(tmp_path, route, expected):
    urls = tmp_path / "urls.py"
    urls.write_text(f"urlpatterns = [\n    {route},\n]\n")
    assert health_url(urls) == expected


def test_init_leaves_the_servers_to_the_user_when_not_given(tmp_path):
    repo = stock_project(tmp_path)
    proc = subprocess.run([PINNED, "--env", "staging", "init"], cwd=repo / "deploy", capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "next: name your servers under `hosts:`" in proc.stdout
    assert load_state(repo / "deploy" / "staging.yaml").hosts is None
    plan = subprocess.run([PINNED, "--env", "staging", "plan"], cwd=repo / "deploy", capture_output=True, text=True)
    assert plan.returncode == 1 and "field 'hosts' is required" in plan.stderr


def test_init_outside_a_django_project_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    git(tmp_path / "empty", "init", "-q")
    proc = subprocess.run([PINNED, "init"], cwd=tmp_path / "empty", capture_output=True, text=True)
    assert proc.returncode == 1 and "no manage.py" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([PINNED, "init"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and "not inside a git repository" in proc.stderr


def test_init_notes_what_it_could_not_find(tmp_path):
    repo = stock_project(tmp_path)
    (repo / "mysite" / "requirements.txt").unlink()
    git(repo, "commit", "-qam", "no requirements")
    g = guess(repo / "deploy")
    assert any("no requirements file" in n for n in g.notes)


def test_app_names_are_valid_for_any_settings_package():
    for settings, name in (("mysite.settings", "mysite"), ("My-Site.settings", "my_site"),
                           ("2fast.settings", "app_2fast"), ("config.settings.production", "config")):
        assert app_name(settings) == name


def test_the_committed_schema_is_the_models():
    committed = (ROOT / "state.schema.json").read_text()
    assert committed == schema_text(), "state.schema.json is out of date: run `pinned schema > state.schema.json`"
    schema = json.loads(committed)
    assert {"app", "repository", "release", "django", "hosts", "ssh"} <= set(schema["properties"])
    assert yaml.safe_load((ROOT / "sandbox.yaml").read_text())["hosts"] == "sandbox"


def test_init_prefers_the_production_module_of_a_settings_package(tmp_path):
    repo = tmp_path / "repo"
    (repo / "mysite" / "settings").mkdir(parents=True)
    (repo / "manage.py").write_text('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings.dev")\n')
    for name in ("__init__", "base", "dev", "production"):
        (repo / "mysite" / "settings" / f"{name}.py").write_text("")
    (repo / "mysite" / "wsgi.py").write_text("application = None\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "layout of a settings package")
    g = guess(repo)
    assert g.settings == "mysite.settings.production" and g.app == "mysite"
    assert any("mysite.settings.dev" in n for n in g.notes)
