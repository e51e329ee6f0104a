"""What a code-only release sends, decided from the files a host's release holds (no host here).

A release's files are a manifest {path: "<mode> <git blob id>"}: made locally from `git ls-tree` of a commit
(state/source.py tree_files) or on the host from the release's files (operations/remote/release_files.py, run
here on real files as the host runs it). The two must agree byte for byte (their digest is what the host
records), and comparing two manifests must give what `git diff` gives, so a shallow clone that has only the
new commit sends exactly the delta a full clone sends."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO
from pinned.operations.scripts import run_py
from pinned.state.model import State
from pinned.state.source import (
    Release,
    SourceError,
    compare,
    known_files,
    manifest_digest,
    manifest_text,
    parse_manifest,
    release,
    transfer_sizes,
    tree_files,
)

STATE = State.model_validate({"app": "agroguia", "repository": str(REPO), "release": "0" * 40,
                              "django": {"settings": "agroguia.settings"}})


def run(command) -> subprocess.CompletedProcess:
    """A pyinfra command line run here as the host runs it (sh -c)."""
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60)


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def git_diff(repo, a: str, b: str) -> tuple[list[str], list[str]]:
    fields = git(repo, "diff", "--no-renames", "--name-status", "-z", a, b).split("\0")
    changed = sorted(p for s, p in zip(fields[0::2], fields[1::2]) if p and s != "D")
    deleted = sorted(p for s, p in zip(fields[0::2], fields[1::2]) if p and s == "D")
    return changed, deleted


def extract(repo, commit: str, dest) -> None:
    """The release's files as the host has them: `git archive` extracted (build_extract.sh's tar)."""
    data = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], check=True,
                          capture_output=True).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="tar")


def on_host(action: str, release_dir) -> str:
    proc = run(run_py("release_files.py", action, release_dir))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def odd_repo(tmp_path_factory):
    """A repository with what the example lacks: an executable, symlinks (to a file and to a folder), a
    non-ASCII and a spaced name, nested folders, an empty file; then a second commit changing modes and
    types, deleting and adding."""
    repo = tmp_path_factory.mktemp("odd")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "app/deep").mkdir(parents=True)
    (repo / "manage.py").write_text("#!/usr/bin/env python3\n")
    (repo / "manage.py").chmod(0o755)
    (repo / "app/views.py").write_text("def v(): pass\n")
    (repo / "app/deep/ñandú file.txt").write_text("ñ\n")
    (repo / "empty").write_text("")
    (repo / "link").symlink_to("app/views.py")
    (repo / "dirlink").symlink_to("app")
    (repo / "becomes_link").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    (repo / "manage.py").chmod(0o644)  # mode only
    (repo / "app/views.py").write_text("def v(): return 1\n")
    (repo / "empty").unlink()
    (repo / "becomes_link").unlink()
    (repo / "becomes_link").symlink_to("manage.py")  # file → symlink
    (repo / "app/new.py").write_text("n\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two")
    return repo


def test_the_host_computes_the_same_manifest_git_gives(odd_repo, commits, tmp_path):
    cases = [(odd_repo, "HEAD~1"), (odd_repo, "HEAD")] + [(REPO, c["commit"]) for c in commits.values()]
    for i, (repo, commit) in enumerate(cases):
        files = tree_files(repo, commit, STATE)
        dest = tmp_path / f"r{i}"
        extract(repo, commit, dest)
        # pinned's own files in a release are not its code
        (dest / ".pinned").mkdir()
        (dest / "assets/admin").mkdir(parents=True)
        (dest / "assets/admin/x.css").write_text("css")
        (dest / "pinned_settings.py").write_text("S = 1")
        (dest / "pinned_runtime.py").write_text("R = 1")
        (dest / ".venv").symlink_to("/srv/agroguia/venvs/abc")
        shown = on_host("show", dest)
        assert shown == manifest_text(files), (repo, commit)
        assert parse_manifest(shown) == files
        digest = on_host("write", dest)
        assert digest == manifest_digest(files)
        assert (dest / ".pinned/files.json").read_text() == manifest_text(files) + "\n"
        assert on_host("show", dest) == manifest_text(files)  # now read from .pinned/files.json


def test_the_manifest_names_modes_symlinks_and_blob_ids_as_git_does(odd_repo):
    one, two = tree_files(odd_repo, "HEAD~1", STATE), tree_files(odd_repo, "HEAD", STATE)
    blob = git(odd_repo, "rev-parse", "HEAD~1:manage.py").strip()
    assert one["manage.py"] == f"100755 {blob}" and two["manage.py"] == f"100644 {blob}"
    assert one["link"].startswith("120000 ") and one["dirlink"].startswith("120000 ")
    assert "app/deep/ñandú file.txt" in one and "app/link" not in one
    assert two["becomes_link"].startswith("120000 ") and one["becomes_link"].startswith("100644 ")


def test_comparing_manifests_gives_what_git_diff_gives(odd_repo, commits):
    pairs = [(odd_repo, "HEAD~1", "HEAD"), (odd_repo, "HEAD", "HEAD~1")]
    pairs += [(REPO, commits[a]["commit"], commits[b]["commit"]) for a, b in permutations(commits, 2)]
    for repo, a, b in pairs:
        delta = compare(tree_files(repo, a, STATE), tree_files(repo, b, STATE))
        assert (list(delta.changed), list(delta.deleted)) == git_diff(repo, a, b), (a, b)
    delta = compare(tree_files(odd_repo, "HEAD~1", STATE), tree_files(odd_repo, "HEAD", STATE))
    assert delta.changed == ("app/new.py", "app/views.py", "becomes_link", "manage.py")
    assert delta.deleted == ("empty",)
    assert delta.replaced == delta.changed + delta.deleted


def test_comparing_a_release_with_itself_sends_nothing(commits):
    files = tree_files(REPO, commits["A"]["commit"], STATE)
    assert compare(files, files).changed == () and compare(files, files).deleted == ()


entries = st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=12),
    st.sampled_from(["100644 " + "a" * 40, "100644 " + "b" * 40, "100755 " + "a" * 40, "120000 " + "c" * 40]),
    max_size=12)


@given(entries, entries)
def test_the_base_with_the_delta_applied_is_the_release(base, new):
    """Hard links of the base, minus what is replaced, plus the changed files sent: exactly the release."""
    delta = compare(base, new)
    built = {p: e for p, e in base.items() if p not in delta.replaced} | {p: new[p] for p in delta.changed}
    assert built == new
    assert set(delta.changed).isdisjoint(delta.deleted)
    assert all(base.get(p) != new[p] for p in delta.changed)  # nothing sent that the base already has


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"error": "PermissionError: x"}',
                                  '{"a": "100644 xyz"}', '{"a": "100600 ' + "a" * 40 + '"}', '{"": "100644 ' +
                                  "a" * 40 + '"}', '{"a": 1}'])
def test_a_host_answer_that_is_no_manifest_is_refused(text):
    assert parse_manifest(text) is None


def test_show_reports_an_unreadable_release_as_an_error_and_exits_0(tmp_path):
    proc = run(run_py("release_files.py", "show", tmp_path / "missing"))
    assert proc.returncode == 0
    assert "error" in json.loads(proc.stdout) and parse_manifest(proc.stdout) is None


def test_known_files_trusts_git_only_when_it_agrees_with_the_hosts_digest(commits, tmp_path):
    a = commits["A"]["commit"]
    files = tree_files(REPO, a, STATE)
    assert known_files(REPO, a, STATE, manifest_digest(files)) == files
    assert known_files(REPO, a, STATE, "") == files  # a release built before pinned recorded a digest
    assert known_files(REPO, a, STATE, "0" * 16) is None  # the host has other files: ask it
    shallow = shallow_clone(tmp_path, "B")
    assert known_files(shallow, a, STATE, manifest_digest(files)) is None  # git cannot tell


def shallow_clone(tmp_path, tag: str):
    dest = tmp_path / f"shallow-{tag}"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", tag, f"file://{REPO}", str(dest)], check=True,
                   capture_output=True)
    return dest


def test_a_shallow_clone_and_a_cold_cache_send_the_same_bytes_as_a_full_clone(commits, tmp_path):
    """The delta from the host's manifest of A (all a shallow clone of B can have) is the very archive a
    full clone with a warm cache makes: same files, same bytes."""
    shallow = shallow_clone(tmp_path, "B")
    with pytest.raises(subprocess.CalledProcessError):
        git(shallow, "cat-file", "-e", commits["A"]["commit"])  # the base's commit is not in the clone
    host_manifest = parse_manifest(manifest_text(tree_files(REPO, commits["A"]["commit"], STATE)))
    full: Release = release(REPO, commits["B"]["commit"], STATE)
    warm = transfer_sizes(REPO, full, STATE, {"web1": ("a-id", host_manifest)}, tmp_path / "warm")
    warm = transfer_sizes(REPO, full, STATE, {"web1": ("a-id", host_manifest)}, tmp_path / "warm")  # cached
    cold = transfer_sizes(shallow, release(shallow, commits["B"]["commit"], STATE), STATE,
                          {"web1": ("a-id", host_manifest), "web2": ("a-id", None)}, tmp_path / "cold")
    assert cold["web1"]["bytes"] == warm["web1"]["bytes"] < cold[""]["bytes"] == warm[""]["bytes"]
    assert open(cold["web1"]["archive"], "rb").read() == open(warm["web1"]["archive"], "rb").read()
    assert list(cold["web1"]["replaced"]) == list(warm["web1"]["replaced"]) == git_diff(
        REPO, commits["A"]["commit"], commits["B"]["commit"])[0]
    assert cold["web1"]["base"] == "a-id" and "web2" not in cold  # nothing known of web2's base: sent whole
    with tarfile.open(cold["web1"]["archive"]) as tar:
        assert sorted(m.name for m in tar.getmembers() if not m.isdir()) == sorted(cold["web1"]["replaced"])
    assert not os.path.exists(tmp_path / "cold" / "repos")


def test_a_shallow_clone_fetches_a_pinned_commit_it_lacks_and_only_that(commits, tmp_path):
    """CI's clone has the branch's last commit; the state file may pin an older one (the pin is committed
    after it): it is fetched from the clone's origin, depth 1, and the clone stays shallow."""
    shallow = shallow_clone(tmp_path, "C")
    rel = release(shallow, commits["A"]["commit"], STATE)
    assert rel.commit == commits["A"]["commit"] and rel.id == f"{commits['A']['time']}-{rel.commit[:12]}"
    assert tree_files(shallow, rel.commit, STATE) == tree_files(REPO, rel.commit, STATE)
    assert git(shallow, "rev-parse", "--is-shallow-repository").strip() == "true"
    with pytest.raises(subprocess.CalledProcessError):
        git(shallow, "cat-file", "-e", commits["B"]["commit"])  # nothing else came with it
    with pytest.raises(SourceError, match="is not a commit of"):
        release(shallow, "f" * 40, STATE)
