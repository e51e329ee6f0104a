"""End to end: a saved plan (`pinned plan --out FILE`) is applied exactly (`pinned apply FILE`), or refused
with nothing changed on the host when the host, the state file or the pinned commit moved in between."""

from __future__ import annotations

import json

import pytest

from conftest import Env, http_get
from pinned.state.plan import SYMBOL

pytestmark = pytest.mark.sandbox
HOST = "saved"
NGINX = "/etc/nginx/conf.d/pinned-agroguia.conf"


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("saved", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.deploy()
    return env


def serves(sandbox, text):
    page = http_get(f"http://{sandbox.booted[HOST].address}/")
    return page.status == 200 and text in page.body


def host_snapshot(sandbox) -> str:
    """What a refused apply must leave as it was: the links, the nginx site, the units, the history."""
    return sandbox.ssh(HOST, f"readlink /srv/agroguia/current; sha256sum {NGINX} /srv/agroguia/history.log; "
                             "ls -1 /srv/agroguia/versions/*; systemctl list-units --all --plain --no-legend "
                             "'agroguia*' | awk '{print $1, $3, $4}'").stdout


def test_apply_runs_exactly_the_reviewed_plan(env, sandbox, tmp_path):
    env.pinned("pin", "B")
    saved = tmp_path / "b.plan.json"
    shown = env.pinned("plan", "--out", str(saved))
    assert f"Saved this plan to {saved}" in shown.stdout
    document = json.loads(saved.read_text())
    steps = document["plan"]["steps"]
    assert {s["kind"] for s in steps} >= {"release", "switch"}
    # no secret value in the file (the app's generated secrets, read on the host)
    values = [line.split("=", 1)[1].strip('"') for line in
              sandbox.ssh(HOST, "cat /etc/pinned/agroguia/secrets.env").stdout.splitlines() if "=" in line]
    assert len(values) >= 2 and all(len(v) >= 16 for v in values)
    assert not [v for v in values if v in saved.read_text() or v[:12] in saved.read_text()]

    applied = env.pinned("apply", str(saved))
    out = applied.stdout + applied.stderr
    assert applied.returncode == 0, out
    assert f"Applying the saved plan {saved}" in out
    for s in steps:  # each saved step ran as one operation
        if s["target"] != "(sensitive)":
            assert f"Starting operation: {SYMBOL[s['action']]} {s['kind']} {s['target']}" in out, s
    assert serves(sandbox, "Release: B")
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def refused(env, saved, *expected):
    proc = env.pinned("apply", str(saved), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"refused: the saved plan {saved}" in out and "nothing was changed" in out, out
    for line in expected:
        assert line in out, out
    assert "Starting operation" not in out, out


def test_apply_refuses_when_the_world_moved(env, sandbox, commits, tmp_path):
    assert serves(sandbox, "Release: B")
    env.pinned("pin", "A")
    saved = tmp_path / "a.plan.json"
    env.pinned("plan", "--out", str(saved))

    # a hand edit of a file pinned manages
    sandbox.ssh(HOST, f"echo '# edited by hand' >> {NGINX}")
    before = host_snapshot(sandbox)
    refused(env, saved, f"{HOST}: file {NGINX} changed")
    assert host_snapshot(sandbox) == before and serves(sandbox, "Release: B")
    assert "# edited by hand" in sandbox.ssh(HOST, f"cat {NGINX}").stdout

    # a moved link (the edit stays: both are named)
    rid_a = f"{commits['A']['time']}-{commits['A']['commit'][:12]}"
    sandbox.ssh(HOST, f"ln -sfn versions/0/{rid_a} /srv/agroguia/current.new && "
                      "mv -T /srv/agroguia/current.new /srv/agroguia/current")
    before = host_snapshot(sandbox)
    refused(env, saved, f"{HOST}: ", "the `current` link changed", f"file {NGINX} changed")
    assert host_snapshot(sandbox) == before

    # a plan made now, then another commit pinned before it is applied
    fresh = tmp_path / "fresh.plan.json"
    env.pinned("plan", "--out", str(fresh))
    env.pinned("pin", "C")
    refused(env, fresh, f"{env.path} changed since the plan was made",
            f"the pinned release is {commits['C']['commit'][:12]} now, {commits['A']['commit'][:12]} in the plan")
    assert host_snapshot(sandbox) == before

    # back to what was reviewed: it applies, and repairs the hand edits
    env.pinned("pin", "A")
    assert env.pinned("apply", str(fresh)).returncode == 0
    assert serves(sandbox, "Release: A")
    assert "# edited by hand" not in sandbox.ssh(HOST, f"cat {NGINX}").stdout
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
