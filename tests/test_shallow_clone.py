"""End to end: a code-only release deployed from CI's shallow clone with a cold release cache sends exactly
what a full clone with a warm cache sends — only the changed files — deciding from what the host already has
(the served release's manifest of files), not from git history the clone does not have."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import REPO, Env, http_get
from pinned.state.model import State
from pinned.state.source import manifest_digest, manifest_text, tree_files

pytestmark = pytest.mark.sandbox
HOST = "shallow"
DELTA = re.compile(r"as hard links of (\S+) \+ (\d+) changed file\(s\), (\d+) deleted, (\d+) bytes to send")
STATE = State.model_validate({"app": "agroguia", "repository": str(REPO), "release": "0" * 40,
                              "django": {"settings": "agroguia.settings"}})


def rid(commits, tag: str) -> str:
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def sent(proc) -> tuple[str, int, int, int]:
    """(base release, changed, deleted, bytes) the plan says the release is sent as."""
    found = DELTA.findall(proc.stdout)
    assert len(found) == 1, proc.stdout + proc.stderr
    base, changed, deleted, nbytes = found[0]
    return base, int(changed), int(deleted), int(nbytes)


def inodes(sandbox, release_dir: str) -> dict[str, str]:
    out = sandbox.ssh(HOST, f"cd {release_dir} && find . -path ./assets -prune -o -path ./.pinned -prune -o "
                            "-type f -printf '%P %i\\n'").stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("ci", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.environ["PINNED_CACHE"] = str(tmp_path_factory.mktemp("warm-cache"))
    env.deploy()  # release A, from the full clone
    return env


def test_a_shallow_clone_with_a_cold_cache_sends_what_a_full_clone_sends(env, sandbox, commits, tmp_path):
    a, b = rid(commits, "A"), rid(commits, "B")
    a_dir, b_dir = f"/srv/agroguia/versions/0/{a}", f"/srv/agroguia/versions/0/{b}"
    # A recorded its files at build time: the manifest git gives for its commit, and its digest.
    a_files = tree_files(REPO, commits["A"]["commit"], STATE)
    meta = json.loads(sandbox.ssh(HOST, f"cat {a_dir}/.pinned/release.json").stdout)
    assert meta["files"] == manifest_digest(a_files)
    assert sandbox.ssh(HOST, f"cat {a_dir}/.pinned/files.json").stdout == manifest_text(a_files) + "\n"

    # The full clone with a warm cache: the delta git can tell (twice: the second from the cache).
    env.write(release=commits["B"]["commit"])
    env.pinned("plan")
    full = sent(env.pinned("plan"))
    assert full[:3] == (a, 2, 0) and full[3] < 2000, full

    # CI: a shallow clone of B (A's commit is not in it) and an empty release cache.
    clone = tmp_path / "ci-clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "B", f"file://{REPO}", str(clone)],
                   check=True, capture_output=True)
    has_a = subprocess.run(["git", "-C", str(clone), "cat-file", "-e", commits["A"]["commit"]], capture_output=True)
    assert has_a.returncode != 0, "the shallow clone has A's commit: this test would prove nothing"
    cold = tmp_path / "cold-cache"
    env.environ["PINNED_CACHE"] = str(cold)
    env.write(repository=str(clone))
    assert sent(env.pinned("plan")) == full

    # A release built before pinned recorded its files (no digest, no files.json): the host computes them.
    sandbox.ssh(HOST, f"cd {a_dir}/.pinned && cp -p release.json /root/a-release.json && mv files.json /root/ && "
                      "python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); m.pop(\"files\"); "
                      f"json.dump(m, open(sys.argv[1], \"w\"))' release.json")
    try:
        assert sent(env.pinned("plan")) == full
    finally:
        sandbox.ssh(HOST, f"mv /root/files.json {a_dir}/.pinned/ && cp -p /root/a-release.json {a_dir}/.pinned/"
                          "release.json")

    # Deployed from the shallow clone with the cold cache: the archive it made and sent holds only the two
    # changed files, and is as big as the full clone's delta.
    deploy = env.deploy()
    assert sent(deploy) == full
    archives = sorted((cold / "releases").glob("*-delta-*.tar.gz"))
    assert [p.stat().st_size for p in archives] == [full[3]], archives
    members = subprocess.run(["tar", "-tzf", str(archives[0])], capture_output=True, text=True, check=True).stdout
    assert sorted(m for m in members.split() if not m.endswith("/")) == ["crops/release.py",
                                                                         "crops/templates/crops/index.html"]

    # Every unchanged file of B is a hard link of A's (same inode); the two changed ones are B's own.
    in_a, in_b = inodes(sandbox, a_dir), inodes(sandbox, b_dir)
    changed = {"crops/release.py", "crops/templates/crops/index.html"}
    code = set(in_b) - {"pinned_settings.py", "pinned_runtime.py"}
    assert code == set(a_files) and len(code) > 10
    assert {p for p in code if in_b[p] != in_a[p]} == changed
    page = http_get(f"http://{sandbox.booted[HOST].address}/")
    assert page.status == 200 and "Release: B" in page.body

    # B's own manifest, recorded on the host, is what its commit says: the next release's base is known too.
    b_meta = json.loads(sandbox.ssh(HOST, f"cat {b_dir}/.pinned/release.json").stdout)
    assert b_meta["files"] == manifest_digest(tree_files(REPO, commits["B"]["commit"], STATE))
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
