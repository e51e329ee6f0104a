"""Links inside a release, without hosts: `shared:` folders with a `link` and `scratch:` folders — what the state
file accepts (and refuses in one line naming the field), what the plan and the unit template say, and the host
scripts run here on real files: build_links.sh makes the links (and refuses to hide committed code), the
release's manifest leaves them out (they are pinned's, not the commit's), and a release built as hard links of
another does not inherit its links."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan import EMPTY, desired

from pinned.operations.scripts import run_py, run_sh
from pinned.state.desired import release_links, site_files
from pinned.state.model import StateFileError, parse_state
from pinned.state.plan import plan

BASE = "app: shop\nrepository: x\nrelease: abcdef0\ndjango: {settings: shop.settings}\n"


def run(command) -> subprocess.CompletedProcess:
    """A pyinfra command line run here as the host runs it (sh -c)."""
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60)


def state_error(extra: str) -> str:
    with pytest.raises(StateFileError) as exc:
        parse_state(BASE + extra, "prod.yaml")
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("extra, field, says", [
    ("scratch: ['../cache']", "scratch", "relative path inside the repository"),
    ("scratch: [/var/cache]", "scratch", "relative path inside the repository"),
    ("scratch: ['a/../../b']", "scratch", "relative path inside the repository"),
    ("scratch: ['.']", "scratch", "must name a folder inside the project"),
    ("scratch: [assets]", "scratch", "pinned's own"),
    ("scratch: [.venv/x]", "scratch", "pinned's own"),
    ("scratch: [manage.py]", "scratch", "manage.py"),
    ("scratch: ['a b']", "scratch", "relative path"),
    ("shared: [{name: data, link: ../data}]", "shared.0.link", "relative path inside the repository"),
    ("shared: [{name: data, link: /srv/data}]", "shared.0.link", "relative path inside the repository"),
    ("shared: [{name: data, link: .pinned}]", "shared.0.link", "pinned's own"),
    ("shared: [{name: a/b, link: x}]", "shared", "one folder name"),
    ("shared: [{name: '..', link: x}]", "shared", "one folder name"),
    ("shared: [{name: data, link: x, mode: rw}]", "shared.0.mode", "not a known field"),
    ("shared: [data, {name: data, link: x}]", "shared", "listed once"),
    ("scratch: [cache, cache]", "scratch", "overlap"),
    ("scratch: [var, var/cache]", "scratch", "overlap"),
    ("shared: [{name: c, link: cache}]\nscratch: [cache]", "scratch", "overlap"),
    ("shared: [{name: c, link: a/b}]\nscratch: [a]", "scratch", "overlap"),
])
def test_bad_links_stop_in_one_line_naming_the_field(extra, field, says):
    message = state_error(extra)
    assert message.startswith(f"prod.yaml: field '{field}'") and says in message, message


def test_the_list_of_names_form_stays_valid_and_mixes_with_links():
    state = parse_state(BASE + "shared: [media, {name: index, link: search/index}, {name: logs}]\n"
                               "scratch: [cache, var/tmp]\n", "prod.yaml")
    assert state.shared_names == ["media", "index", "logs"]
    assert state.links == {"search/index": "index", "cache": "", "var/tmp": ""}


def test_the_plan_builds_the_release_with_its_links_and_the_unit_keeps_scratch_per_release():
    d = desired("A", shared=["media", {"name": "index", "link": "search/index"}], scratch=["cache"])
    rid = d.release.id
    assert release_links(d) == (("cache", f"/var/cache/pinned-agroguia/{rid}/cache"),
                                ("search/index", "/srv/agroguia/shared/index"))
    p = plan(d, EMPTY)
    build = next(s for s in p.steps if s.kind == "release")
    assert build.change.links == release_links(d)
    assert (f"links cache → /var/cache/pinned-agroguia/{rid}/cache, search/index → /srv/agroguia/shared/index"
            in build.reason)
    dirs = {s.target: s.change for s in p.steps if s.kind == "directory"}
    assert dirs["/var/cache/pinned-agroguia"].owner == "root"  # the app writes only in its releases' folders
    assert dirs["/srv/agroguia/shared/index"].owner == "agroguia"
    unit = {f.path: f.content for f in site_files(d)}["/etc/systemd/system/agroguia@.service"]
    assert ("ExecStartPre=+/bin/rm -rf /var/cache/pinned-agroguia/%i\n"
            "ExecStartPre=+/usr/bin/install -d -o agroguia -g agroguia -m 0700 /var/cache/pinned-agroguia/%i/cache\n"
            "ExecStopPost=-+/bin/rm -rf /var/cache/pinned-agroguia/%i\n") in unit
    assert "ReadWritePaths=/var/cache/pinned-agroguia\n" in unit
    assert "ReadWritePaths=/srv/agroguia/shared/index\n" in unit
    # Without links: nothing of it in the plan or the unit (the unit of a site without them is unchanged).
    plain = desired("A")
    assert not plain.state.links and release_links(plain) == ()
    plain_unit = {f.path: f.content for f in site_files(plain)}["/etc/systemd/system/agroguia@.service"]
    assert "pinned-agroguia" not in plain_unit.replace("/run/pinned-agroguia", "")
    assert "links" not in next(s for s in plan(plain, EMPTY).steps if s.kind == "release").reason


def build_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    building = tmp_path / "building"
    (building / ".pinned").mkdir(parents=True)
    for name, text in files.items():
        (building / name).parent.mkdir(parents=True, exist_ok=True)
        (building / name).write_text(text)
    return building


def test_build_links_makes_the_links_and_the_manifest_leaves_them_out(tmp_path):
    building = build_folder(tmp_path, {"manage.py": "", "app/views.py": "x = 1\n"})
    before = run(run_py("release_files.py", "write", str(building)))
    assert before.returncode == 0
    manifest = (building / ".pinned/files.json").read_text()
    result = run(run_sh("build_links.sh", str(building), "cache", "/var/cache/pinned-x/1/cache",
                        "search/index", "/srv/x/shared/index"))
    assert result.returncode == 0, result.stderr
    assert os.readlink(building / "cache") == "/var/cache/pinned-x/1/cache"
    assert os.readlink(building / "search/index") == "/srv/x/shared/index"
    assert (building / ".pinned/links").read_text() == "cache\nsearch/index\n"
    after = run(run_py("release_files.py", "write", str(building)))
    assert after.stdout == before.stdout and (building / ".pinned/files.json").read_text() == manifest
    # The links are what a link in the commit would be, had pinned not listed them: the manifest would differ.
    (building / ".pinned/links").unlink()
    assert run(run_py("release_files.py", "write", str(building))).stdout != before.stdout


@pytest.mark.parametrize("committed", ["cache", "cache/.gitkeep"])
def test_build_links_refuses_to_hide_committed_code(tmp_path, committed):
    building = build_folder(tmp_path, {"manage.py": "", committed: "kept\n"})
    result = run(run_sh("build_links.sh", str(building), "cache", "/var/cache/pinned-x/1/cache"))
    assert result.returncode == 1
    assert "cache is in the release's code (committed)" in result.stderr and "remove it from the repository" in \
        result.stderr
    assert not (building / "cache").is_symlink() and (building / committed).read_text() == "kept\n"


def test_a_release_built_from_another_does_not_inherit_its_links(tmp_path):
    base = build_folder(tmp_path / "base", {"manage.py": "", "app/views.py": "x = 1\n"})
    assert run(run_sh("build_links.sh", str(base), "cache", "/var/cache/pinned-x/OLD/cache")).returncode == 0
    building = tmp_path / "new"
    building.mkdir()
    result = run(run_sh("build_hardlink.sh", str(building), str(base), ""))
    assert result.returncode == 0, result.stderr
    assert not (building / "cache").is_symlink() and (building / "app/views.py").exists()
    assert os.readlink(base / "cache") == "/var/cache/pinned-x/OLD/cache"  # the base is never written to
    assert run(run_sh("build_links.sh", str(building), "cache", "/var/cache/pinned-x/NEW/cache")).returncode == 0
    assert os.readlink(building / "cache") == "/var/cache/pinned-x/NEW/cache"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab./-_ ~\\", min_size=1, max_size=12))
def test_any_scratch_path_is_inside_the_project_or_refused(path):
    try:
        state = parse_state(BASE + f"scratch: [{path!r}]\n".replace("\\", "\\\\"), "prod.yaml")
    except StateFileError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("prod.yaml:")
        return
    (link,) = state.scratch
    parts = link.split("/")
    assert not link.startswith("/") and ".." not in parts and link not in (".", "manage.py")
    assert os.path.normpath(link) == link and parts[0] not in ("assets", ".pinned", ".venv")


@pytest.mark.parametrize("committed, project, links", [
    ("cache/.gitkeep", ".", "scratch: [cache]"),
    ("site/cache", "site", "scratch: [cache]"),
    ("var", ".", "shared: [{name: d, link: var/data}]"),  # a committed file where the link's folder would be
])
def test_a_link_over_committed_code_is_refused_before_any_host(tmp_path, committed, project, links):
    from pinned.state.source import SourceError, release

    repo = tmp_path / "repo"
    for name in (f"{project}/requirements.txt", f"{project}/manage.py", committed):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    state = parse_state(BASE + f"django: {{settings: shop.settings, project_dir: {project}}}\n{links}\n", "prod.yaml")
    with pytest.raises(SourceError) as exc:
        release(repo, "HEAD", state)
    assert "would be a link" in str(exc.value) and "\n" not in str(exc.value)
    fine = parse_state(BASE + f"django: {{settings: shop.settings, project_dir: {project}}}\nscratch: [other]\n",
                       "prod.yaml")
    assert release(repo, "HEAD", fine).commit
