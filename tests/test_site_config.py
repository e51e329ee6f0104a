"""End to end: a stock Django project (`django-admin startproject`) whose settings read a REQUIRED environment
variable at import, deployed with its own `env:` and `secrets:`.

* The plan is blocked, in one line naming the secret, until `pinned secret set` stores its value.
* The app gets the secret and the env as environment variables (systemd's EnvironmentFile=): values with
  quotes, backslashes, `$` and spaces arrive exactly (the page shows a hash of what the process has), in the
  service and in manage.py (pinned's settings module reads the same files).
* A changed secret shows as `~ restart … (secrets (sensitive): API_TOKEN changed)` and restarts the current
  release under load with no failed request; a changed env the same; a secret removed from the state file
  is removed from the host and from the app's environment.
* Neither value nor a fragment of it is in any output, plan, JSON, history, the project's repository, the
  journal, or a file on the host other than the root-owned secrets file (`grep -F` over /srv /etc /tmp
  /var/log /run).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, Env, http_get
from load import Load

pytestmark = pytest.mark.sandbox
HOST = "sitecfg"
APP = "mysite"

URLS = '''
import hashlib
import os

from django.http import HttpResponse
from django.urls import path


def token(request):
    from django.conf import settings
    digest = hashlib.sha256(settings.API_TOKEN.encode()).hexdigest()[:12]
    extra = hashlib.sha256(os.environ.get("EXTRA", "-").encode()).hexdigest()[:12]
    return HttpResponse(f"Release: {digest}\\ngreeting={os.environ.get('GREETING', '')}\\nextra={extra}\\n",
                        content_type="text/plain")


def health(request):
    return HttpResponse("ok")


urlpatterns = [path("token/", token), path("health/", health)]
'''


def sha12(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def make_value(label: str) -> tuple[str, str]:
    """A value with what a shell or an env file would mangle, around a random core (grepped for)."""
    core = secrets.token_hex(16)
    return f"{label}-{core} $HOME \"q\" 'x' \\ `id` ${{PATH}}  end", core


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, str]:
    """A stock project, edited as users do: settings read API_TOKEN (required) at import."""
    where = tmp_path_factory.mktemp("stock")
    project = where / "mysite"
    project.mkdir()
    subprocess.run([str(ROOT / ".venv" / "bin" / "django-admin"), "startproject", "mysite", str(project)],
                   check=True)
    settings = project / "mysite" / "settings.py"
    settings.write_text("import os\n" + settings.read_text() + '\nAPI_TOKEN = os.environ["API_TOKEN"]\n')
    (project / "mysite" / "urls.py").write_text(URLS)
    (project / "requirements.txt").write_text("Django>=5.2,<5.3\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "stock project")
    return project, git(project, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def env(sandbox, project, tmp_path_factory):
    sandbox.host(HOST)
    path, commit = project
    return Env("site", tmp_path_factory.mktemp("state"), [HOST], app=APP, repository=str(path), release=commit,
               django={"settings": "mysite.settings"}, secrets=["API_TOKEN", "EXTRA"],
               env={"GREETING": "hello \"world\" $HOME \\n 'x'"})


def page(sandbox) -> dict[str, str]:
    got = http_get(f"http://{sandbox.booted[HOST].address}/token/")
    assert got.status == 200, got.body[:500]
    release = got.body.split("\n", 1)[0].removeprefix("Release: ")
    return {"token": release, **dict(line.split("=", 1) for line in got.body.splitlines()[1:] if "=" in line)}


def set_secret(env: Env, name: str, value: str) -> subprocess.CompletedProcess:
    cmd = [str(ROOT / ".venv" / "bin" / "pinned"), "--env", env.name, "--limit", HOST, "secret", "set", name]
    proc = subprocess.run(cmd, cwd=ROOT, input=value + "\n", capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PINNED_STATE_DIR": str(env.state_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


OUTPUTS: list[str] = []  # every output of the test, searched for the values at the end


def run_pinned(env: Env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = env.pinned(*args, check=check)
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


def deploy(env: Env, check: bool = True) -> subprocess.CompletedProcess:
    proc = env.deploy(check=check)
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


VALUES: dict[str, tuple[str, str]] = {}


def test_plan_is_blocked_until_the_secret_is_set(env, sandbox):
    plan = run_pinned(env, "plan", check=False)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "secret API_TOKEN has no value on" in plan.stdout and "secret EXTRA has no value on" in plan.stdout
    assert "Plan blocked" in plan.stdout
    blocked = json.loads(run_pinned(env, "plan", "--json", check=False).stdout)
    assert blocked["status"] == "blocked" and len(blocked["blocked"]) == 2
    # Not declared: refused before any host is contacted.
    cmd = [str(ROOT / ".venv" / "bin" / "pinned"), "--env", env.name, "secret", "set", "OTHER"]
    proc = subprocess.run(cmd, cwd=ROOT, input="x\n", capture_output=True, text=True,
                          env={**os.environ, "PINNED_STATE_DIR": str(env.state_dir)})
    assert proc.returncode == 1 and "OTHER is not declared" in proc.stderr


def test_deploys_once_the_secret_is_set_and_the_app_reads_it_at_import(env, sandbox):
    VALUES["token1"] = make_value("one")
    VALUES["extra"] = make_value("extra")
    said = set_secret(env, "API_TOKEN", VALUES["token1"][0])
    OUTPUTS.append(said.stdout + said.stderr)
    said = set_secret(env, "EXTRA", VALUES["extra"][0])
    OUTPUTS.append(said.stdout + said.stderr)
    listed = run_pinned(env, "secret", "list").stdout
    assert "API_TOKEN" in listed and "EXTRA" in listed and "SECRET_KEY" in listed
    assert "(no value" not in listed
    plan = run_pinned(env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout
    assert "GREETING" in plan.stdout  # plain env values are shown (the env file's diff)
    deploy(env)
    got = page(sandbox)
    assert got["token"] == sha12(VALUES["token1"][0])
    assert got["extra"] == sha12(VALUES["extra"][0])
    assert got["greeting"] == "hello \"world\" $HOME \\n 'x'"
    # manage.py (pinned's settings module) reads the same value as the service (systemd's EnvironmentFile=).
    check = sandbox.ssh(HOST, f"cd /srv/{APP}/current && runuser -u {APP} -- env "
                        "DJANGO_SETTINGS_MODULE=pinned_settings .venv/bin/python -c "
                        "'import hashlib, os, django; django.setup(); "
                        "print(hashlib.sha256(os.environ[\"API_TOKEN\"].encode()).hexdigest()[:12])'")
    assert check.stdout.strip() == sha12(VALUES["token1"][0])
    again = run_pinned(env, "plan", "--detailed-exitcode")
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout


def test_a_changed_secret_restarts_the_release_with_no_failed_request(env, sandbox):
    VALUES["token2"] = make_value("two")
    said = set_secret(env, "API_TOKEN", VALUES["token2"][0])
    OUTPUTS.append(said.stdout + said.stderr)
    plan = run_pinned(env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2
    assert "secrets (sensitive): API_TOKEN changed" in plan.stdout, plan.stdout
    assert "~ restart mysite@" in plan.stdout
    steps = json.loads(run_pinned(env, "plan", "--json").stdout)["steps"]
    assert [s["kind"] for s in steps] == ["restart"], steps
    old, new = sha12(VALUES["token1"][0]), sha12(VALUES["token2"][0])
    with Load(f"http://{sandbox.booted[HOST].address}/token/", clients=20) as load:
        time.sleep(2)
        began = time.monotonic()
        result = deploy(env, check=False)
        took = time.monotonic() - began
        time.sleep(2)
    print(f"\n=== secret change: restart under load, deploy {took:.1f}s\n{load.report()}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not load.expired
    assert load.non_2xx == 0, load.statuses
    assert load.errors == 0, load.error_kinds
    assert load.per_release.get(old, 0) > 0 and load.per_release.get(new, 0) > 0, load.per_release
    assert load.final_release == new
    assert page(sandbox)["token"] == new
    assert run_pinned(env, "plan", "--detailed-exitcode").returncode == 0


def test_a_changed_env_restarts_and_a_removed_secret_is_undone(env, sandbox):
    env.write(env={"GREETING": "bonjour"})
    plan = run_pinned(env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "env: GREETING changed" in plan.stdout and "+GREETING=\"bonjour\"" in plan.stdout
    deploy(env)
    assert page(sandbox)["greeting"] == "bonjour"
    env.write(secrets=["API_TOKEN"])
    plan = run_pinned(env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "EXTRA no longer declared" in plan.stdout, plan.stdout
    assert "secrets (sensitive): EXTRA removed" in plan.stdout
    deploy(env)
    assert page(sandbox)["extra"] == sha12("-")
    keys = sandbox.ssh(HOST, f"cut -d= -f1 /etc/pinned/{APP}/secrets.env").stdout.split()
    assert keys == ["API_TOKEN", "DB_PASSWORD", "SECRET_KEY"]
    assert run_pinned(env, "plan", "--detailed-exitcode").returncode == 0


def test_no_value_is_anywhere_but_the_secrets_file(env, sandbox, project):
    assert VALUES, "the tests before did not run"
    OUTPUTS.append(run_pinned(env, "history").stdout)
    OUTPUTS.append(run_pinned(env, "secret", "list", "--json").stdout)
    OUTPUTS.append(run_pinned(env, "releases", "--json").stdout)
    for label, (value, core) in VALUES.items():
        for fragment in (value, core, core[:12], core[-12:]):
            for text in OUTPUTS:
                assert fragment not in text, f"{label}: a fragment of the value is in a command's output"
            for path in (env.path, *project[0].rglob("*")):
                if path.is_file():
                    assert fragment.encode() not in path.read_bytes(), f"{label}: in {path}"
            assert fragment not in git(project[0], "log", "-p", "--all")
        # On the host: the journal, and files (the secrets file is the only one, root:<app> 0640).
        journal = sandbox.ssh(HOST, f"journalctl --no-pager -o cat | grep -cF -e {core[:12]} -e {core[-12:]} || true")
        assert journal.stdout.strip() == "0", f"{label}: in the journal"
        if label == "extra":  # removed from the host with its name
            found = sandbox.ssh(HOST, f"grep -rlF -e {core[:12]} -e {core[-12:]} /srv /etc /tmp /var/log /run "
                                "/root 2>/dev/null || true").stdout.split()
            assert found == [], found
            continue
        found = sandbox.ssh(HOST, f"grep -rlF -e {core[:12]} -e {core[-12:]} /srv /etc /tmp /var/log /run /root "
                            "2>/dev/null || true").stdout.split()
        if label == "token1":  # replaced by token2
            assert found == [], found
        else:
            assert found == [f"/etc/pinned/{APP}/secrets.env"], found
    mode = sandbox.ssh(HOST, f"stat -c '%U:%G %a' /etc/pinned/{APP}/secrets.env /etc/pinned/{APP}").stdout.split("\n")
    assert mode[0] == f"root:{APP} 640" and mode[1] == f"root:{APP} 750", mode
