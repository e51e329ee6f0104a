"""End to end: pin and roll back. A release still on disk comes back by a link switch: nothing is built,
uploaded, installed or migrated. Every switch is in the history; the plan is honest and shows no secret.
A code-only release takes the served release's assets/ as hard links (no collectstatic); one that changes a
static file runs collectstatic and nginx serves the new file."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import REPO, Env, http_get

pytestmark = pytest.mark.sandbox
HOST = "roll"
BUILD_KINDS = ("venv", "release", "migrate", "packages", "database")


NEW_CSS = "/* release S */\nh1 { color: #1565c0; }\n"


@pytest.fixture(scope="module")
def repo(commits, tmp_path_factory):
    """The example's repository, plus S: B with a changed static file (crops/static/crops/style.css), tagged S."""
    clone = tmp_path_factory.mktemp("repo") / "agroguia"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-C", str(clone)]
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run([*git, "checkout", "-q", "B"], check=True)
    (clone / "crops/static/crops/style.css").write_text(NEW_CSS)
    subprocess.run([*git, "commit", "-qam", "S: a static file changes"], check=True)
    subprocess.run([*git, "tag", "S"], check=True)
    return clone


@pytest.fixture(scope="module")
def env(sandbox, commits, repo, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("roll", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"], repository=str(repo))
    env.deploy()
    return env


def assets(sandbox, rid):
    """A release's assets/: each file's path and inode."""
    out = sandbox.ssh(HOST, f"cd /srv/agroguia/versions/0/{rid}/assets && find . -type f -printf '%P %i\\n'").stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def serves(sandbox, text):
    host = sandbox.booted[HOST]
    page = http_get(f"http://{host.address}/")
    return page.status == 200 and text in page.body


def tree_snapshot(sandbox):
    """Every file and folder under the release tree and the venvs, with inode and mtime."""
    out = sandbox.ssh(HOST, "find /srv/agroguia/versions /srv/agroguia/venvs -printf '%p %i %T@\\n' | sort").stdout
    return out


def test_pin_rollback_and_forward_again(env, sandbox, commits):
    assert serves(sandbox, "Release: A")
    # B: a code-only release, built.
    assert env.pinned("pin", "B").returncode == 0
    env.reload()
    assert env.state["release"] == commits["B"]["commit"]
    plan_b = env.pinned("plan", "--detailed-exitcode")
    assert plan_b.returncode == 2 and "+ release /srv/agroguia/versions/0/" in plan_b.stdout
    assert "+ venv" not in plan_b.stdout  # same requirements: the shared virtualenv is reused
    # Only what changed crosses the wire; the rest are hard links of the release being served.
    sent = re.search(r"as hard links of \S+ \+ 2 changed file\(s\), 0 deleted, (\d+) bytes to send", plan_b.stdout)
    assert sent and int(sent.group(1)) < 2000, plan_b.stdout
    # Its template and crops/release.py changed, nothing collectstatic reads: A's assets are B's.
    rid_a = f"{commits['A']['time']}-{commits['A']['commit'][:12]}"
    assert f"; static files unchanged: assets linked from {rid_a})\n" in plan_b.stdout, plan_b.stdout
    env.deploy()
    assert serves(sandbox, "Release: B")
    rid_b = f"{commits['B']['time']}-{commits['B']['commit'][:12]}"
    links = sandbox.ssh(HOST, f"stat -c %h /srv/agroguia/versions/0/{rid_b}/manage.py "
                              f"/srv/agroguia/versions/0/{rid_b}/crops/templates/crops/index.html").stdout.split()
    assert links == ["2", "1"]  # manage.py shared with A; the changed template is B's own
    assets_a, assets_b = assets(sandbox, rid_a), assets(sandbox, rid_b)
    assert "crops/style.css" in assets_a and "admin/css/base.css" in assets_a
    assert assets_b == assets_a  # the same files, the same inodes: hard links, collectstatic did not run
    records = sandbox.ssh(HOST, f"cat /srv/agroguia/versions/0/{rid_a}/.pinned/static_sources.json "
                                f"/srv/agroguia/versions/0/{rid_b}/.pinned/static_sources.json").stdout.splitlines()
    assert len(records) == 2 and records[0] == records[1] and "crops/static" in json.loads(records[0])["locations"]
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0

    # Back to A: only the link switch; A is still warm (keep_warm), B stays warm in turn.
    before = tree_snapshot(sandbox)
    env.pinned("pin", "A")
    plan_a = json.loads(env.pinned("plan", "--json").stdout)
    kinds = sorted({s["kind"] for s in plan_a["steps"]})
    assert kinds == ["app", "switch", "warm"], plan_a
    assert not any(s["kind"] in BUILD_KINDS for s in plan_a["steps"])
    assert plan_a["summary"] == {"add": 1, "change": 2, "remove": 0}
    deploy_a = env.deploy()
    assert serves(sandbox, "Release: A")
    assert tree_snapshot(sandbox) == before, "rollback created or touched files in the release tree or venvs"
    assert "Starting operation: + release" not in deploy_a.stderr + deploy_a.stdout

    # Forward to B again: likewise.
    env.pinned("pin", "B")
    plan_b2 = json.loads(env.pinned("plan", "--json").stdout)
    assert sorted({s["kind"] for s in plan_b2["steps"]}) == ["app", "switch", "warm"]
    env.deploy()
    assert serves(sandbox, "Release: B")
    assert tree_snapshot(sandbox) == before

    history = env.pinned("history").stdout
    rid = {t: f"{commits[t]['time']}-{commits[t]['commit'][:12]}" for t in "AB"}
    switches = re.findall(r"switch from=(\S+) to=(\S+) by=\S+", history)
    assert switches == [("none", rid["A"]), (rid["A"], rid["B"]), (rid["B"], rid["A"]), (rid["A"], rid["B"])]

    releases = json.loads(env.pinned("releases", "--json").stdout)["hosts"][HOST]
    flags = {r["id"]: (r["current"], r["pinned"], r["last"], r["status"]) for r in releases}
    assert flags == {rid["A"]: (False, False, False, "ready"), rid["B"]: (True, True, True, "ready")}


def test_unknown_ref_leaves_the_state_file_alone(env):
    before = env.path.read_text()
    proc = env.pinned("pin", "no-such-tag", check=False)
    assert proc.returncode == 1 and "no-such-tag" in proc.stderr and "unchanged" in proc.stderr
    assert env.path.read_text() == before


def test_pin_keeps_comments_and_layout(env, commits):
    env.path.write_text(f"# production of the guide\napp: agroguia  # the name\nrepository: {env.state['repository']}\n"
                        f"release: {commits['A']['commit']}  # pinned by hand\n"
                        "django:\n  settings: agroguia.settings\nhosts: sandbox\nsite:\n  health_url: /health/\n")
    env.pinned("pin", "B")
    text = env.path.read_text()
    assert text.startswith("# production of the guide\napp: agroguia  # the name\n")
    assert f"release: {commits['B']['commit']}  # pinned by hand\n" in text
    env.reload()


def test_plan_shows_no_secret(env, sandbox):
    secrets = sandbox.ssh(HOST, "cat /etc/pinned/agroguia/secrets.env").stdout
    values = [line.split("=", 1)[1] for line in secrets.split()]
    sandbox.ssh(HOST, "rm /etc/pinned/agroguia/secrets.env.unused 2>/dev/null; "
                      "chmod 0644 /etc/pinned/agroguia/secrets.env")
    text = env.pinned("plan").stdout
    as_json = env.pinned("plan", "--json").stdout
    assert "~ secrets /etc/pinned/agroguia/secrets.env (sensitive)" in text
    for value in values:
        assert value not in text and value not in as_json
    env.deploy()
    assert sandbox.ssh(HOST, "stat -c %a /etc/pinned/agroguia/secrets.env").stdout.strip() == "640"
    assert sandbox.ssh(HOST, "cat /etc/pinned/agroguia/secrets.env").stdout == secrets  # kept, not regenerated


def test_hand_edit_of_the_nginx_site_is_drift_and_put_back(env, sandbox):
    site = "/etc/nginx/conf.d/pinned-agroguia.conf"
    original = sandbox.ssh(HOST, f"cat {site}").stdout
    sandbox.ssh(HOST, f"sed -i 's/client_max_body_size 20m;/client_max_body_size 1m;/' {site}")
    plan = env.pinned("plan", "--detailed-exitcode")
    assert plan.returncode == 2
    assert f"~ config {site}" in plan.stdout
    assert "-    client_max_body_size 1m;" in plan.stdout and "+    client_max_body_size 20m;" in plan.stdout
    env.deploy()
    assert sandbox.ssh(HOST, f"cat {site}").stdout == original
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_current_moved_by_hand_and_stopped_service_are_corrected(env, sandbox, commits):
    rid_a = f"{commits['A']['time']}-{commits['A']['commit'][:12]}"
    pinned_id = f"{commits['B']['time']}-{commits['B']['commit'][:12]}"
    sandbox.ssh(HOST, f"ln -sfn versions/0/{rid_a} /srv/agroguia/current; systemctl stop agroguia@{pinned_id}.service")
    plan = env.pinned("plan").stdout
    assert f"~ switch /srv/agroguia/current  (versions/0/{rid_a} → versions/0/{pinned_id})" in plan
    assert f"+ app agroguia@{pinned_id}  (release on disk is not running)" in plan
    env.deploy()
    assert serves(sandbox, "Release: B")
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_a_changed_static_file_is_collected_and_served(env, sandbox, commits, repo):
    """S changes crops/static/crops/style.css over B: collectstatic runs, and nginx serves the new file."""
    host = sandbox.booted[HOST]
    rid_b = f"{commits['B']['time']}-{commits['B']['commit'][:12]}"
    old_css = http_get(f"http://{host.address}/static/crops/style.css")
    assert old_css.status == 200 and "release S" not in old_css.body and "font-family" in old_css.body
    env.pinned("pin", "S")
    plan_s = env.pinned("plan").stdout
    assert "; collectstatic (static files changed: crops/static/crops/style.css))\n" in plan_s, plan_s
    env.deploy()
    assert serves(sandbox, "Release: B")  # S is B's code with another style sheet
    css = http_get(f"http://{host.address}/static/crops/style.css")
    assert css.status == 200 and css.body == NEW_CSS
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "S"], capture_output=True, text=True,
                         check=True).stdout.strip()
    rid_s = env.pinned("releases", "--json").stdout
    rid_s = next(r["id"] for r in json.loads(rid_s)["hosts"][HOST] if r["id"].endswith(sha[:12]))
    assets_b, assets_s = assets(sandbox, rid_b), assets(sandbox, rid_s)
    assert set(assets_s) == set(assets_b)
    assert not set(assets_s.items()) & set(assets_b.items())  # collected anew: no file shared with B
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
