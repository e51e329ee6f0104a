"""A release built as hard links of the served one skips collectstatic when nothing it reads changed, without hosts:
the decision (state/static.py, property tests), the plan's line and JSON, and the host scripts run here on real
files with the test environment's Django: collectstatic.py records what collectstatic read, build_hardlink.sh
links the base's assets/ only when asked and only if the base still has them and their record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyinfra.api import FileUploadCommand
from test_plan import EMPTY, HOST, converge, desired

from pinned.operations import release as release_op
from pinned.operations.release import COLLECTSTATIC
from pinned.operations.scripts import run_sh, script
from pinned.state.observed import parse
from pinned.state.plan import plan
from pinned.state.render import plan_json
from pinned.state.source import compare
from pinned.state.static import overlaps, reuse_assets, static_key

KEY = "k" * 32
SECRETS = {"DB_PASSWORD": "0123456789ab", "SECRET_KEY": "ba9876543210"}
RECORD = {"format": 1, "key": KEY, "outside": "", "secrets": SECRETS,
          "locations": ["crops/static", "extra/static"],
          "files": ["agroguia/__init__.py", "agroguia/settings.py", "crops/__init__.py", "crops/admin.py",
                    "crops/apps.py", "crops/models.py", "manage.py", "pinned_settings.py", "settings.json"]}
SETTINGS = "agroguia.settings"
def observe_functions() -> dict:
    """The observe script's functions, from its text as the host runs it (secrets_lib.py inlined)."""
    scope: dict = {"__name__": "observe"}
    exec(compile(script("observe.py"), "observe.py", "exec"), scope)
    return scope


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=120,
                          **kwargs)


# --- the decision ------------------------------------------------------------------------------------------------

def test_a_code_only_change_reuses_the_assets():
    changed = ("crops/release.py", "crops/templates/crops/index.html", "crops/views.py")
    ok, why = reuse_assets(RECORD, KEY, SECRETS, changed, (), SETTINGS)
    assert ok and why == "static files unchanged"


@pytest.mark.parametrize("record, key, replaced, added, says", [
    (None, KEY, (), (), "has no record"),
    ({**RECORD, "format": 2}, KEY, (), (), "has no record"),
    ({**RECORD, "outside": "/srv/x/shared/css"}, KEY, (), (), "from outside the release: /srv/x/shared/css"),
    (RECORD, "other", (), (), "virtualenv, settings or env differ"),
    (RECORD, "", (), (), "virtualenv, settings or env differ"),
    ({**RECORD, "secrets": None}, KEY, (), (), "the secrets differ"),  # the secrets file was not readable
    ({**RECORD, "secrets": {**SECRETS, "API_TOKEN": "aaaaaaaaaaaa"}}, KEY, (), (), "the secrets differ"),
    ({**RECORD, "secrets": {**SECRETS, "SECRET_KEY": "aaaaaaaaaaaa"}}, KEY, (), (), "the secrets differ"),
    (RECORD, KEY, ("crops/static/crops/style.css",), (), "static files changed: crops/static/crops/style.css"),
    (RECORD, KEY, ("crops/static/new.css",), ("crops/static/new.css",), "static files changed"),
    (RECORD, KEY, ("crops",), (), "static files changed: crops"),  # a file or link where the folder was
    (RECORD, KEY, ("extra/static",), (), "static files changed: extra/static"),
    (RECORD, KEY, ("assets/x.css",), (), "static files changed: assets/x.css"),  # collectstatic's output folder
    (RECORD, KEY, ("agroguia/settings.py",), (), "the settings module changed: agroguia/settings.py"),
    (RECORD, KEY, ("agroguia/settings/local.py",), (), "the settings module changed"),  # as a package
    (RECORD, KEY, ("crops/models.py",), (), "read by collectstatic: crops/models.py"),
    (RECORD, KEY, ("settings.json",), (), "read by collectstatic: settings.json"),
    (RECORD, KEY, ("crops/admin.py",), (), "read by collectstatic"),
    (RECORD, KEY, ("crops/local.py",), ("crops/local.py",), "new Python file: crops/local.py"),  # a failed import
])
def test_collectstatic_runs_when_anything_it_reads_may_have_changed(record, key, replaced, added, says):
    ok, why = reuse_assets(record, key, SECRETS, replaced, added, SETTINGS)
    assert not ok and why.startswith("collectstatic (") and says in why, why


SEGMENT = st.text(alphabet="abc._-", min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(locations=st.lists(PATH, min_size=1, max_size=4), pick=st.integers(0, 3), inside=st.lists(SEGMENT, max_size=3),
       others=st.lists(PATH, max_size=4))
def test_any_changed_path_under_a_recorded_location_forces_collectstatic(locations, pick, inside, others):
    record = {**RECORD, "locations": locations, "files": []}
    changed = "/".join([locations[pick % len(locations)], *inside])
    ok, why = reuse_assets(record, KEY, SECRETS, tuple(others) + (changed,), (), SETTINGS)
    assert not ok and why.startswith("collectstatic (")


@settings(max_examples=300, deadline=None)
@given(locations=st.lists(PATH, max_size=4), files=st.lists(PATH, max_size=4), changed=st.lists(PATH, max_size=6))
def test_changes_that_touch_no_source_reuse_the_assets(locations, files, changed):
    """Paths under another top folder than every source, the settings module and assets/: nothing collectstatic
    read changed, the assets are the base's."""
    record = {**RECORD, "locations": [f"src/{p}" for p in locations], "files": [f"src/{p}" for p in files]}
    ok, why = reuse_assets(record, KEY, SECRETS, tuple(f"other/{p}" for p in changed), (), SETTINGS)
    assert ok, why


@given(a=PATH, b=PATH)
def test_overlaps_means_one_path_is_the_other_or_inside_it(a, b):
    assert overlaps(a, b) == overlaps(b, a) == (a == b or a.startswith(b + "/") or b.startswith(a + "/"))


def test_the_delta_tells_added_files_from_changed_ones():
    d = compare({"a.py": "100644 " + "1" * 40, "b.py": "100644 " + "2" * 40},
                {"a.py": "100644 " + "3" * 40, "c.py": "100644 " + "4" * 40})
    assert (d.changed, d.deleted, d.added) == (("a.py", "c.py"), ("b.py",), ("c.py",))


def test_the_key_is_the_same_for_any_release_of_these_inputs_and_changes_with_them():
    env = {"DEBUG_TOOLBAR": "fp1"}
    a, b = desired("A"), desired("B")
    assert static_key(a, HOST, env) == static_key(b, HOST, env)
    base = static_key(b, HOST, env)
    for other in (static_key(desired("B2"), HOST, env),  # another virtualenv
                  static_key(b, HOST, {"DEBUG_TOOLBAR": "fp2"}),  # env
                  static_key(replace(b, state=b.state.model_copy(update={
                      "site": b.state.site.model_copy(update={"static_url": "/s/"})})), HOST, env)):  # settings
        assert other != base


def test_the_previews_passwords_are_not_the_apps_secrets():
    record = {**RECORD, "secrets": {**SECRETS, "PINNED_PREVIEW_DB_PASSWORD_X": "aaaaaaaaaaaa"}}
    assert reuse_assets(record, KEY, SECRETS, (), (), SETTINGS)[0]
    assert reuse_assets(RECORD, KEY, {**SECRETS, "PINNED_PREVIEW_DB_PASSWORD_Y": "b" * 12}, (), (), SETTINGS)[0]


# --- the plan -----------------------------------------------------------------------------------------------------

def build_step(d, observed):
    p = plan(d, observed)
    step = next(s for s in p.steps if s.kind == "release")
    return p, step


def served_a():
    on_a = converge(desired("A"), EMPTY)
    return on_a, on_a["server"].current_release


def delta(base_id, replaced, added=()):
    return {"base": base_id, "bytes": 556, "changed": len(replaced), "deleted": (), "replaced": replaced,
            "added": added, "archive": "/cache/b-delta.tar.gz"}


def test_the_plan_links_the_assets_and_says_so_when_no_static_input_changed():
    on_a, served = served_a()
    b = desired("B")
    whole = {"bytes": 3287, "changed": None, "deleted": (), "archive": "/cache/b.tar.gz"}
    b = replace(b, transfers={"": whole, "server": delta(served.id, ("crops/release.py", "crops/views.py"))})
    _, first = build_step(b, on_a)  # A has no record (built before pinned kept one): collectstatic runs
    assert not first.change.static_linked and first.change.static_key
    assert "collectstatic (the base release has no record of its static files' sources)" in first.reason
    assert first.change.secrets == "/etc/pinned/agroguia/secrets.env"  # collectstatic records its fingerprints
    record = {**RECORD, "key": first.change.static_key, "secrets": on_a["server"].secret_fingerprints}
    on_a = {"server": replace(on_a["server"], current_static=record)}
    p, step = build_step(b, on_a)
    assert step.change.static_linked and step.change.base_dir.endswith(served.id)
    assert step.reason.endswith(f"; static files unchanged: assets linked from {served.id}")
    doc = plan_json(p, "state/test.yaml")
    said = next(s for s in doc["steps"] if s["kind"] == "release")
    assert f"static files unchanged: assets linked from {served.id}" in said["reason"]

    # A changed static file: collectstatic, and the plan says which.
    b_css = replace(b, transfers={"": whole, "server": delta(served.id, ("crops/static/crops/style.css",))})
    _, step = build_step(b_css, on_a)
    assert not step.change.static_linked
    assert step.reason.endswith("; collectstatic (static files changed: crops/static/crops/style.css)")
    # Sent whole (no base): collectstatic, its key recorded all the same.
    _, step = build_step(replace(b, transfers={"": whole}), on_a)
    assert not step.change.static_linked and step.change.static_key == record["key"] and not step.change.base_dir
    # Another env: another key.
    b_env = replace(desired("B", env={"FEATURE": "on"}), transfers=b.transfers)
    _, step = build_step(b_env, on_a)
    assert not step.change.static_linked and "virtualenv, settings or env differ" in step.reason
    # Secrets other than those the base's collectstatic read: collectstatic.
    other = {"server": replace(on_a["server"], current_static={**record, "secrets": {"SECRET_KEY": "0" * 12}})}
    _, step = build_step(b, other)
    assert not step.change.static_linked
    assert step.reason.endswith("; collectstatic (the secrets differ from the base's)")


# --- the host scripts, on real files --------------------------------------------------------------------------------

PROJECT = {
    "manage.py": "import os, sys\n"
                 "if __name__ == '__main__':\n"
                 "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')\n"
                 "    from django.core.management import execute_from_command_line\n"
                 "    execute_from_command_line(sys.argv)\n",
    "proj/__init__.py": "",
    "proj/settings.py": "from pathlib import Path\n"
                        "BASE = Path(__file__).resolve().parent.parent\n"
                        "SECRET_KEY = 'x'\n"
                        "INSTALLED_APPS = ['django.contrib.staticfiles', 'app1', 'app2']\n"
                        "STATICFILES_DIRS = [BASE / 'extra']\n"
                        "FLAVOUR = (BASE / 'proj' / 'flavour.txt').read_text()\n"
                        "try:\n    from .local import *  # noqa\nexcept ImportError:\n    pass\n",
    "proj/flavour.txt": "plain\n",
    "app1/__init__.py": "",
    "app1/static/app1/a.css": "a { color: red }\n",
    "app1/views.py": "X = 1\n",
    "app2/__init__.py": "",
    "extra/x.css": "x {}\n",
    "pinned_settings.py": "import os\nfrom proj.settings import *  # noqa\n"
                          "STATIC_URL = '/static/'\n"
                          "STATIC_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets')\n",
}


def release(root: Path, files: dict[str, str] = PROJECT) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".pinned").mkdir(exist_ok=True)
    (root / ".venv").symlink_to(sys.prefix)  # the test environment's virtualenv, with its Django
    return root


def collectstatic(root: Path, key: str = KEY) -> subprocess.CompletedProcess:
    secrets = root.parent / "secrets.env"
    secrets.write_text('DB_PASSWORD="pw1"\nSECRET_KEY="k-1"\nAPI_TOKEN="t\\"x"\n')
    return run(run_sh("build_collectstatic.sh", "root", root, COLLECTSTATIC, key, secrets))


def test_collectstatic_records_the_folders_and_files_it_read(tmp_path):
    root = release(tmp_path / "rel")
    result = collectstatic(root)
    assert result.returncode == 0, result.stderr
    assert (root / "assets/app1/a.css").read_text() == "a { color: red }\n" and (root / "assets/x.css").exists()
    record = json.loads((root / ".pinned/static_sources.json").read_text())
    assert record["format"] == 1 and record["key"] == KEY and record["outside"] == ""
    # The secrets' fingerprints as the observe fact makes them (the plan compares the two), never a value.
    observe = observe_functions()
    assert record["secrets"] == observe["observe_secrets"](str(tmp_path / "secrets.env"))["fingerprints"]
    assert set(record["secrets"]) == {"DB_PASSWORD", "SECRET_KEY", "API_TOKEN"}
    assert not any(v in (root / ".pinned/static_sources.json").read_text() for v in ("pw1", "k-1", 't\\"x'))
    # app2 has no static/ yet: recorded all the same (a file added there later is collected); staticfiles' own
    # folder is in the virtualenv (its requirements hash is the key's): not recorded
    assert record["locations"] == ["app1/static", "app2/static", "extra"]
    files = set(record["files"])
    assert {"manage.py", "pinned_settings.py", "proj/__init__.py", "proj/settings.py", "proj/flavour.txt",
            "app1/__init__.py", "app2/__init__.py"} <= files
    assert "app1/views.py" not in files  # never imported by collectstatic: a change there keeps the assets
    assert not any(f.startswith(("assets/", ".venv/", "/", "app1/static/", "extra/")) or "__pycache__" in f
                   for f in files), files  # the static files are their locations': not listed one by one
    # What the record says decides as it should: a view and a template change keep the assets; the others not.
    secrets = record["secrets"]
    assert reuse_assets(record, KEY, secrets, ("app1/views.py", "app1/templates/t.html"), (), "proj.settings")[0]
    for path in ("app1/static/app1/a.css", "extra/y.css", "app2/static/app2/new.css", "proj/flavour.txt",
                 "proj/settings.py", "manage.py"):
        assert not reuse_assets(record, KEY, secrets, (path,), (), "proj.settings")[0], path
    assert not reuse_assets(record, KEY, secrets, ("proj/local.py",), ("proj/local.py",), "proj.settings")[0]


def test_a_static_folder_outside_the_release_and_its_virtualenv_is_never_reused(tmp_path):
    outside = tmp_path / "shared/css"
    outside.mkdir(parents=True)
    (outside / "s.css").write_text("s {}\n")
    local = "from .settings import BASE\nSTATICFILES_DIRS = [BASE / 'extra', BASE / 'css']\n"
    root = release(tmp_path / "rel", {**PROJECT, "proj/local.py": local})
    (root / "css").symlink_to(outside)  # as a `shared:` folder's link would be
    result = collectstatic(root)
    assert result.returncode == 0, result.stderr
    assert (root / "assets/s.css").exists()
    record = json.loads((root / ".pinned/static_sources.json").read_text())
    assert record["outside"] == str(root / "css")
    assert not reuse_assets(record, KEY, record["secrets"], ("app1/views.py",), (), "proj.settings")[0]


def test_a_failed_collectstatic_leaves_no_record(tmp_path):
    root = release(tmp_path / "rel", {**PROJECT, "proj/local.py": "raise RuntimeError('broken settings')\n"})
    result = collectstatic(root)
    assert result.returncode != 0 and "broken settings" in result.stderr
    assert not (root / ".pinned/static_sources.json").exists()


def test_hardlink_takes_the_base_assets_only_when_linked_and_still_there(tmp_path):
    base = tmp_path / "versions/0/base"
    for rel, text in {"manage.py": "m", "app/views.py": "v1", "assets/app/a.css": "css",
                      ".pinned/static_sources.json": json.dumps(RECORD), ".pinned/release.json": "{}"}.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    building = tmp_path / "versions/0/.new.building"
    assert run(run_sh("build_prepare.sh", building)).returncode == 0
    result = run(run_sh("build_hardlink.sh", building, base, "linked", "app/views.py"))
    assert result.returncode == 0, result.stderr
    assert (building / "assets/app/a.css").stat().st_ino == (base / "assets/app/a.css").stat().st_ino
    assert json.loads((building / ".pinned/static_sources.json").read_text()) == RECORD
    assert not (building / ".pinned/release.json").exists() and not (building / "app/views.py").exists()
    assert (base / ".pinned/static_sources.json").exists()  # copied, not moved

    # Not linked: no assets, no record (collectstatic makes them).
    assert run(run_sh("build_prepare.sh", building)).returncode == 0
    assert run(run_sh("build_hardlink.sh", building, base, "")).returncode == 0
    assert not (building / "assets").exists() and not (building / ".pinned/static_sources.json").exists()

    # The base lost its record since the plan: refused, nothing copied.
    (base / ".pinned/static_sources.json").unlink()
    assert run(run_sh("build_prepare.sh", building)).returncode == 0
    result = run(run_sh("build_hardlink.sh", building, base, "linked"))
    assert result.returncode == 1 and "no record of its static files' sources" in result.stderr
    assert not (building / "manage.py").exists()


def test_observe_reads_the_current_release_record_and_parse_keeps_it(tmp_path):
    observe = observe_functions()
    root = tmp_path / "srv/app"
    rid_a, rid_b = "20261120T100000-aaaaaaaaaaaa", "20261121T100000-bbbbbbbbbbbb"
    for rid, record in ((rid_a, RECORD), (rid_b, None)):
        (root / f"versions/0/{rid}/.pinned").mkdir(parents=True)
        (root / f"versions/0/{rid}/.pinned/release.json").write_text(json.dumps({"id": rid, "status": "ready"}))
        if record:
            (root / f"versions/0/{rid}/.pinned/static_sources.json").write_text(json.dumps(record))
    (root / "current").symlink_to(f"versions/0/{rid_a}")
    doc = {"python": "3.13", "tree": observe["observe_tree"](str(root))}
    assert parse(json.dumps(doc)).current_static == RECORD
    (root / "current").unlink()
    (root / "current").symlink_to(f"versions/0/{rid_b}")  # built before pinned kept a record
    doc = {"python": "3.13", "tree": observe["observe_tree"](str(root))}
    observed = parse(json.dumps(doc))
    assert observed.current == rid_b and observed.current_static is None


def run_operation(commands, tmp_path) -> None:
    """The build operation's commands run here as the host runs them: an upload is a copy."""
    for command in commands:
        if isinstance(command, FileUploadCommand):
            shutil.copyfile(command.src, command.dest)
            continue
        raw = command.get_raw_value()
        assert len(raw) < 128 * 1024  # one argument of `sh -c` (Linux: MAX_ARG_STRLEN)
        result = subprocess.run(["sh", "-c", raw], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


def test_the_build_operation_runs_whole_then_as_hard_links_with_the_assets_linked(tmp_path):
    """release.build's commands (three round trips: the folder, the upload, the rest chained), run on real files:
    a release sent whole is collected; one built from it with static_linked has its assets as hard links."""
    code = {k: v for k, v in PROJECT.items() if k != "pinned_settings.py"}
    src = tmp_path / "src"
    for rel, text in code.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    archive, delta = tmp_path / "a.tar.gz", tmp_path / "delta.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=".")
    with tarfile.open(delta, "w:gz") as tar:  # what B is sent: the changed file only
        tar.add(src / "app1/views.py", arcname="app1/views.py")
    (tmp_path / "secrets.env").write_text('SECRET_KEY="k"\n')
    venvs = tmp_path / "venvs"
    venvs.mkdir()
    (venvs / "h1").symlink_to(sys.prefix)
    (tmp_path / "by-id").mkdir()
    root = tmp_path / "versions/0"

    def build(rid, sent=archive, **more):
        args = dict(app="root", release_id=rid, building=str(root / f".{rid}.building"), final=str(root / rid),
                    tarball=str(root / f".{rid}.tar.gz"), archive=str(sent), venv=str(venvs / "h1"),
                    settings=PROJECT["pinned_settings.py"], runtime="# runtime\n",
                    metadata=json.dumps({"id": rid, "status": "ready"}), by_id=str(tmp_path / "by-id" / rid),
                    by_id_target=f"../versions/0/{rid}", static_key=KEY, secrets=str(tmp_path / "secrets.env"),
                    **more)
        commands = list(release_op.build._inner(**args))
        assert len(commands) == 3
        run_operation(commands, tmp_path)
        return root / rid

    a = build("ra")
    assert (a / "pinned_settings.py").read_text() == PROJECT["pinned_settings.py"]
    assert oct((a / "pinned_settings.py").stat().st_mode & 0o777) == "0o644" and os.readlink(a / ".venv") == \
        str(venvs / "h1")
    assert (a / "assets/app1/a.css").exists() and json.loads((a / ".pinned/release.json").read_text())["files"]
    assert json.loads((a / ".pinned/static_sources.json").read_text())["key"] == KEY
    assert os.readlink(tmp_path / "by-id/ra") == "../versions/0/ra" and not (root / ".ra.building").exists()

    b = build("rb", delta, base_dir=str(a), replaced=("app1/views.py",), static_linked=True)
    assert (b / "assets/app1/a.css").stat().st_ino == (a / "assets/app1/a.css").stat().st_ino
    assert (b / ".pinned/static_sources.json").read_text() == (a / ".pinned/static_sources.json").read_text()
    assert (b / "manage.py").stat().st_ino == (a / "manage.py").stat().st_ino
    assert (b / "app1/views.py").stat().st_ino != (a / "app1/views.py").stat().st_ino  # sent anew
    c = build("rc", delta, base_dir=str(a), replaced=("app1/views.py",))
    assert (c / "assets/app1/a.css").stat().st_ino != (a / "assets/app1/a.css").stat().st_ino
    assert (c / "assets/app1/a.css").read_text() == "a { color: red }\n"
