"""The scripts that run on the hosts (operations/remote/), run here on real files in a tmp folder: no host, no
root (except the secrets generator's test, which chowns to root and is skipped without it). Each runs exactly as
the host runs it: the command that operations/scripts.py builds (quoted by pyinfra), given to `sh -c`."""

from __future__ import annotations

import grp
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from pinned.operations.scripts import REMOTE, SOURCE_LIB, interpreter, run_py, run_sh, script


def run(command, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a pyinfra command line here as the host would (pyinfra gives it to sh -c)."""
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def lib_call(function: str, *args: str) -> subprocess.CompletedProcess:
    """Call one function of lib.sh with these arguments."""
    text = script("lib.sh") + f'\n{function} "$@"\n'
    return subprocess.run(["sh", "-c", text, "pinned", *args], capture_output=True, text=True, timeout=60)


def tree(root: Path) -> dict[str, tuple]:
    """Every path below root: (kind, inode, mtime, content) — what writing to it would change."""
    out = {}
    for path in sorted(root.rglob("*")):
        st_ = path.lstat()
        if path.is_symlink():
            out[str(path.relative_to(root))] = ("link", os.readlink(path))
        elif path.is_dir():
            out[str(path.relative_to(root))] = ("dir", st_.st_ino, st_.st_mtime_ns)
        else:
            out[str(path.relative_to(root))] = ("file", st_.st_ino, st_.st_mtime_ns, path.read_bytes())
    return out


def stub(bin_dir: Path, name: str, body: str) -> None:
    """A fake command (nginx, systemctl) for the scripts that call one: records its calls in calls.log."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir}/calls.log"\n{body}\n')
    path.chmod(0o755)


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# --- the files themselves -------------------------------------------------------------------------------------

def remote_files() -> list[Path]:
    return sorted(p for p in REMOTE.iterdir() if p.is_file() and p.suffix in (".sh", ".py"))


def test_every_remote_script_is_used():
    """No dead scripts: each file in operations/remote/ is named by a module of operations/."""
    modules = "\n".join(p.read_text() for p in (ROOT / "operations").glob("*.py"))
    unused = [p.name for p in remote_files() if f'"{p.name}"' not in modules and f"'{p.name}'" not in modules]
    assert not unused, f"scripts no module of operations/ uses: {unused}"
    named = set(re.findall(r"""(?:script|run_sh|run_py)\(["']([\w.-]+)["']""", modules))
    assert named <= {p.name for p in remote_files()}, f"named but missing: {named - {p.name for p in remote_files()}}"


def test_shell_scripts_say_their_shell_and_source_lib_when_they_use_it():
    functions = re.findall(r"^(\w+)\(\) \{", (REMOTE / "lib.sh").read_text(), re.M)
    assert {"atomic_write", "atomic_link", "nginx_install", "nginx_check", "nginx_reload", "stop_units"} <= set(
        functions)
    for path in remote_files():
        if path.suffix != ".sh":
            continue
        text = path.read_text()
        assert text.split("\n", 1)[0] in ("#!/bin/sh", "#!/bin/bash"), f"{path.name}: no #!/bin/sh or #!/bin/bash"
        if path.name == "lib.sh":
            continue
        uses = [f for f in functions if re.search(rf"^\s*{f}\b|[;&|{{]\s*{f}\b", text, re.M)]
        assert bool(uses) == (SOURCE_LIB in text), f"{path.name}: uses {uses} but sources lib.sh: {SOURCE_LIB in text}"
        built = script(path.name)
        assert SOURCE_LIB not in built  # the loader put lib.sh's text in its place
        assert interpreter(built) == ("bash" if text.startswith("#!/bin/bash") else "sh")
        check = subprocess.run([interpreter(built), "-n", "-c", built], capture_output=True, text=True)
        assert check.returncode == 0, f"{path.name}: {check.stderr}"


def test_shellcheck_passes():
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing: `make deps` installs it (Debian package shellcheck)")
    names = sorted(str(p.relative_to(ROOT)) for p in REMOTE.glob("*.sh"))
    result = subprocess.run(["shellcheck", "-S", "warning", *names], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_commands_pass_values_as_arguments_only():
    nasty = "$(touch pwned) `touch pwned` \"; rm -rf / #'"
    command = run_sh("build_finish.sh", nasty, "b")
    assert list(command.bits[:2]) == ["sh", "-c"] and command.bits[3] == "pinned"
    assert command.bits[2].obj == script("build_finish.sh")  # the text as in the file, no value in it
    assert [b.obj for b in command.bits[4:]] == [nasty, "b"]  # each value one quoted argument
    assert run_sh("copy_database.sh", "a", "", "0", "x").bits[0] == "bash"
    py = run_py("release_meta.py", "/x", "k=v")
    assert list(py.bits[:2]) == ["python3", "-c"] and py.bits[2].obj == (REMOTE / "release_meta.py").read_text()


# --- a release's files ----------------------------------------------------------------------------------------

def test_hardlink_copy_links_the_base_and_never_writes_it(tmp_path):
    base = tmp_path / "versions/0/base"
    for rel, text in {"manage.py": "m", "app/views.py": "v1", "app/models.py": "models", "deleted.txt": "d",
                      "sub/deep/file.txt": "deep", "assets/site.css": "css", ".pinned/release.json": "{}",
                      "pinned_settings.py": "S = 1", "pinned_runtime.py": "R = 1"}.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    (base / ".venv").symlink_to("/srv/app/venvs/abc")
    before = tree(base)
    building = tmp_path / "versions/0/.new.building"
    assert run(run_sh("build_prepare.sh", building)).returncode == 0
    result = run(run_sh("build_hardlink.sh", building, base, "", "app/views.py", "deleted.txt", "not/there.py"))
    assert result.returncode == 0, result.stderr
    for rel in ("manage.py", "app/models.py", "sub/deep/file.txt"):
        assert (building / rel).stat().st_ino == (base / rel).stat().st_ino, rel
    for rel in ("app/views.py", "deleted.txt", "assets", "pinned_settings.py", "pinned_runtime.py", ".venv"):
        assert not os.path.lexists(building / rel), rel
    assert (building / ".pinned").is_dir() and not any((building / ".pinned").iterdir())
    after = tree(base)
    assert after == before  # same paths, inodes, times and contents: the base was not written


# --- prune's guard --------------------------------------------------------------------------------------------

@pytest.fixture
def app_root(tmp_path):
    root = tmp_path / "srv/app"
    for rel in ("versions/1/r1/keep", "versions/1/r2/keep", "versions/1/.r3.building/keep", "venvs/h1/keep",
                "venvs/h2/keep", "by-id/keep", "shared/keep"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "current").symlink_to("versions/1/r1")
    for rel in ("srv/appx/versions/1/r1/keep", "other/keep"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    return root


REFUSED = [
    "", "{root}", "{root}/", "{root}/versions", "{root}/versions/", "{root}/versions/1", "{root}/versions/1/",
    "{root}/venvs", "{root}/venvs/", "{root}/by-id", "{root}/current", "{root}/shared/keep",
    "{root}/versions/1/r1/keep",  # inside a release: only a whole one is removed
    "{root}/versions/1/..", "{root}/versions/1/.", "{root}/versions/1/../..", "{root}/versions/1/../../..",
    "{root}/versions/1/../../../../other", "{root}/versions/../venvs", "{root}/versions/./1",
    "{root}/versions/1/r1/../../..", "{root}/venvs/..", "{root}/venvs/.", "{root}/venvs/../by-id",
    "{root}/venvs/../../../other", "{root}/versions//1", "{root}//versions/1/r1", "{root}/versions/1//r1",
    "{root}x/versions/1/r1", "{tmp}/other", "versions/1/r1", "/",
]


@pytest.mark.parametrize("path", REFUSED)
def test_prune_refuses_what_is_not_a_release_or_a_venv(app_root, tmp_path, path):
    path = path.format(root=app_root, tmp=tmp_path)
    stub(tmp_path / "bin", "systemctl", "exit 0")
    before = tree(tmp_path)
    result = run(run_sh("prune.sh", app_root, path, "", "", ""), env={"PATH": f"{tmp_path}/bin:{os.environ['PATH']}"})
    assert result.returncode == 1
    assert result.stderr == f"pinned: refusing to remove {path}\n"
    assert tree(tmp_path) == before
    assert calls(tmp_path / "bin") == []


@pytest.mark.parametrize("rel", ["versions/1/r2", "versions/1/.r3.building", "venvs/h2"])
def test_prune_removes_a_release_a_leftover_build_or_a_venv(app_root, tmp_path, rel):
    stub(tmp_path / "bin", "systemctl", "exit 0")
    kept = {p for p in tree(tmp_path) if not p.startswith(f"srv/app/{rel}") and "/bin" not in p}
    result = run(run_sh("prune.sh", app_root, app_root / rel, "", "", ""),
                 env={"PATH": f"{tmp_path}/bin:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert not (app_root / rel).exists()
    assert kept <= set(tree(tmp_path))
    assert calls(tmp_path / "bin") == []  # no release id: no unit touched


# (is-enabled's exit status, is-active's lines for the socket and the service, whether prune disables them)
UNIT_STATES = [
    (0, "inactive\ninactive", True),   # enabled (a host rebooted with it enabled)
    (1, "active\nactive", True),       # running, not enabled
    (1, "inactive\nfailed", True),     # a failed service stays loaded until stopped or reset
    (1, "", True),                     # systemd said nothing: stop to be sure
    (1, "inactive\ninactive", False),  # a stopped release kept on disk: nothing to disable, no reload
]


@pytest.mark.parametrize("enabled, active, disables", UNIT_STATES)
def test_prune_of_a_release_stops_its_units_if_they_run_and_removes_its_by_id_link(app_root, tmp_path, enabled,
                                                                                     active, disables):
    stub(tmp_path / "bin", "systemctl", f'case "$1" in is-enabled) exit {enabled};; '
                                        f'is-active) printf "{active}\\n"; exit 3;; esac; exit 0')
    (app_root / "by-id/r2").symlink_to("../versions/1/r2")
    result = run(run_sh("prune.sh", app_root, app_root / "versions/1/r2", "app@r2.socket", "app@r2.service",
                        app_root / "by-id/r2"), env={"PATH": f"{tmp_path}/bin:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert not (app_root / "versions/1/r2").exists() and not os.path.lexists(app_root / "by-id/r2")
    disable = "systemctl disable --quiet --now app@r2.socket app@r2.service"
    assert (disable in calls(tmp_path / "bin")) == disables, calls(tmp_path / "bin")
    assert all(c.split()[1] in ("is-active", "is-enabled", "disable") for c in calls(tmp_path / "bin"))
    assert (app_root / "versions/1/r1/keep").exists()


def test_build_finish_links_by_id_before_the_release_appears(tmp_path):
    building, final, link = tmp_path / ".r.building", tmp_path / "r", tmp_path / "by-id-r"
    building.mkdir()
    (building / "f").write_text("x")
    result = run(run_sh("build_finish.sh", building, final, link, "r"))
    assert result.returncode == 0, result.stderr
    assert (final / "f").read_text() == "x" and not building.exists() and os.readlink(link) == "r"
    text = script("build_finish.sh")
    assert text.index("atomic_link \"$3\" \"$4\"") < text.index("mv -T \"$1\" \"$2\"")


# --- release metadata -----------------------------------------------------------------------------------------

def test_release_meta_updates_fields_keeps_the_others_and_writes_atomically(tmp_path):
    meta = tmp_path / ".pinned/release.json"
    meta.parent.mkdir()
    meta.write_text(json.dumps({"id": "r1", "commit": "abc", "status": "building", "schema": 3}))
    inode = meta.stat().st_ino
    result = run(run_py("release_meta.py", tmp_path, "status=failed", "failure=health check answered 502",
                        "note=a=b"))
    assert result.returncode == 0, result.stderr
    assert json.loads(meta.read_text()) == {"id": "r1", "commit": "abc", "schema": 3, "status": "failed",
                                            "failure": "health check answered 502", "note": "a=b"}
    assert os.listdir(meta.parent) == ["release.json"]  # no tmp file left
    assert meta.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    from pinned.operations.files import RELEASE_FILES, RELEASE_META
    (tmp_path / "manage.py").write_text("m")
    result = run(run_sh("build_stamp.sh", tmp_path, RELEASE_META, RELEASE_FILES, json.dumps({"id": "r2"})))
    assert result.returncode == 0, result.stderr
    stamped = json.loads(meta.read_text())
    assert stamped["id"] == "r2" and "status" not in stamped  # the metadata given, then stamped
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamped["built_at"])
    # The manifest of its files (not pinned's own .pinned/) and its digest, recorded in the metadata.
    manifest = json.loads((tmp_path / ".pinned/files.json").read_text())
    assert manifest == {"manage.py": "100644 08b9811c98f0d90dbacc006ddcd80c5945b9ea55"}  # git hash-object
    from pinned.state.source import manifest_digest
    assert stamped["files"] == manifest_digest(manifest)


# --- lib.sh ---------------------------------------------------------------------------------------------------

def test_atomic_write_replaces_the_file_and_leaves_no_tmp(tmp_path):
    target, tmp = tmp_path / "schema.json", tmp_path / ".schema.json.tmp"
    target.write_text("old\n")
    inode = target.stat().st_ino
    value = '{"a": "$(touch pwned)", "b": "`x`\\\\n\'"}'
    result = lib_call("atomic_write", str(target), str(tmp), value)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == value + "\n"
    assert target.stat().st_ino != inode and not tmp.exists() and not (tmp_path / "pwned").exists()
    assert run(run_sh("schema_file.sh", tmp_path, "{}")).returncode == 0
    assert target.read_text() == "{}\n" and sorted(os.listdir(tmp_path)) == ["schema.json"]
    assert lib_call("atomic_write", str(tmp_path / "no/such/file"), str(tmp_path / "no/tmp"), "x").returncode != 0


def test_atomic_link_is_never_missing_while_it_switches(tmp_path):
    link = tmp_path / "current"
    targets = {"versions/1/a", "versions/1/b"}
    assert run(run_sh("atomic_link.sh", link, "versions/1/a")).returncode == 0
    assert os.readlink(link) == "versions/1/a"
    seen, problems, done = [], [], threading.Event()

    def read():
        while not done.is_set():
            try:
                value = os.readlink(link)
            except OSError as error:
                problems.append(repr(error))
                continue
            seen.append(value)
            if value not in targets:
                problems.append(value)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        text = script("lib.sh") + (
            '\ni=0\nwhile [ $i -lt 100 ]; do\n'
            '    atomic_link "$1" versions/1/b || exit 1\n    atomic_link "$1" versions/1/a || exit 1\n'
            '    i=$((i+1))\ndone\n')
        switched = subprocess.run(["sh", "-c", text, "pinned", str(link)], capture_output=True, text=True)
    finally:
        done.set()
        reader.join()
    assert switched.returncode == 0, switched.stderr  # 200 switches, each verified
    assert not problems, problems[:5]
    assert set(seen) == targets  # the reader saw both targets: it read while the link switched
    assert os.readlink(link) == "versions/1/a" and sorted(os.listdir(tmp_path)) == ["current"]
    assert run(run_sh("atomic_link.sh", tmp_path / "missing/dir/link", "x")).returncode != 0


def test_config_nginx_restores_the_old_file_when_nginx_rejects_the_new_one(tmp_path):
    bin_dir = tmp_path / "bin"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    conf = tmp_path / "site.conf"
    stub(bin_dir, "systemctl", 'case "$1" in is-active) exit 0;; esac')
    # Rejected, with an old file: the old one is back, nginx's output on stderr, exit 1, no reload.
    stub(bin_dir, "nginx", 'echo "nginx: [emerg] unexpected end of file"; exit 1')
    conf.write_text("old")
    Path(f"{conf}.pinned-tmp").write_text("new")
    result = run(run_sh("config_nginx.sh", conf), env)
    assert (result.returncode, result.stderr) == (1, "nginx: [emerg] unexpected end of file\n")
    assert conf.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["bin", "site.conf"]
    assert not any(c.startswith("systemctl reload") for c in calls(bin_dir))
    # Rejected, no old file: the new one is removed.
    conf.unlink()
    Path(f"{conf}.pinned-tmp").write_text("new")
    assert run(run_sh("config_nginx.sh", conf), env).returncode == 1
    assert sorted(os.listdir(tmp_path)) == ["bin"]
    # Accepted: in place, nothing left beside it, nginx reloaded because it runs...
    stub(bin_dir, "nginx", "exit 0")
    Path(f"{conf}.pinned-tmp").write_text("new")
    assert run(run_sh("config_nginx.sh", conf), env).returncode == 0
    assert conf.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["bin", "site.conf"]
    assert calls(bin_dir)[-1] == "systemctl reload nginx"
    # ...and not reloaded when it does not run.
    stub(bin_dir, "systemctl", 'case "$1" in is-active) exit 3;; esac')
    Path(f"{conf}.pinned-tmp").write_text("newer")
    assert run(run_sh("config_nginx.sh", conf), env).returncode == 0
    assert conf.read_text() == "newer" and calls(bin_dir)[-1] == "systemctl is-active --quiet nginx"


def test_switch_moves_upstream_and_current_together_or_neither(tmp_path):
    bin_dir, root = tmp_path / "bin", tmp_path / "srv/app"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    stub(bin_dir, "systemctl", 'case "$1" in is-active) exit 0;; esac')
    stub(bin_dir, "nginx", "exit 0")
    (root / "versions/1/a").mkdir(parents=True)
    (root / "versions/2/b").mkdir(parents=True)
    (root / "current").symlink_to("versions/1/a")
    up = tmp_path / "upstream.conf"
    up.write_text("a")
    args = (up, root / "current", "versions/2/b", root / "history.log", "a", "b", "me@here", root / "versions/2/served",
            "b")
    result = run(run_sh("switch.sh", *args), env)
    assert result.returncode == 0, result.stderr
    assert os.readlink(root / "current") == "versions/2/b" and up.read_text() == "b"
    assert (root / "versions/2/served").exists() and calls(bin_dir)[-1] == "systemctl reload nginx"
    assert re.fullmatch(r"\S+Z switch from=a to=b by=me@here\n", (root / "history.log").read_text())
    # nginx rejects the next upstream: the old one is back and current has not moved.
    stub(bin_dir, "nginx", 'echo "nginx: bad upstream"; exit 1')
    result = run(run_sh("switch.sh", up, root / "current", "versions/1/a", root / "history.log", "b", "a", "me@here",
                        root / "versions/1/served", "c"), env)
    assert (result.returncode, result.stderr) == (1, "nginx: bad upstream\n")
    assert os.readlink(root / "current") == "versions/2/b" and up.read_text() == "b"
    assert len((root / "history.log").read_text().splitlines()) == 1


def _canary(tmp_path: Path, health: str, seconds: str = "2"):
    """A host whose `current` was just switched from release a to b; watch.sh's arguments and environment."""
    bin_dir, root = tmp_path / "bin", tmp_path / "srv/app"
    stub(bin_dir, "systemctl", 'case "$1" in is-active) exit 0;; esac')
    stub(bin_dir, "nginx", "exit 0")
    stub(bin_dir, "curl", f'cat "{tmp_path}/health"')
    stub(bin_dir, "pgrep", "exit 1")  # no nginx workers to wait for (not this machine's: sandbox hosts run some)
    (tmp_path / "health").write_text(health)
    (root / "versions/1/a").mkdir(parents=True)
    (root / "versions/1/b").mkdir(parents=True)
    (root / "current").symlink_to("versions/1/b")
    up = tmp_path / "upstream.conf"
    up.write_text("upstream b")
    log = tmp_path / "access.log"
    log.write_text(_log_lines(50, errors=50))  # before the watch: not counted
    args = ("/run/b.sock", "shop.example", "/health/", log, seconds, "1", up, "upstream a", root / "current",
            "versions/1/a", root / "history.log", "b", "a", "me@here", root / "versions/1/served")
    return args, {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, root, up, log


def _log_lines(n: int, errors: int = 0) -> str:
    return "".join(f'10.0.0.1 - - [26/Nov/2026:18:00:00 +0000] "GET /?q=a%20b HTTP/1.1" {500 if i < errors else 200} '
                   f'612 "-" "load"\n' for i in range(n))


def test_watch_passes_a_healthy_canary(tmp_path):
    args, env, root, up, log = _canary(tmp_path, "200")
    result = run(run_sh("watch.sh", *args), env)
    assert result.returncode == 0, result.stderr
    assert "0 of 0 requests answered 5xx" in result.stdout  # the 50 errors logged before the switch don't count
    assert os.readlink(root / "current") == "versions/1/b" and up.read_text() == "upstream b"


@pytest.mark.parametrize("errors,fails", [(0, False), (1, True), (10, True)])
def test_watch_switches_back_a_canary_answering_5xx(tmp_path, errors, fails):
    args, env, root, up, log = _canary(tmp_path, "200")
    appender = threading.Timer(0.3, lambda: log.open("a").write(_log_lines(30, errors)))
    appender.start()
    result = run(run_sh("watch.sh", *args), env)
    appender.join()
    if not fails:  # 0 of 30
        assert result.returncode == 0 and "0 of 30 requests answered 5xx" in result.stdout, result.stderr
        return
    assert result.returncode == 1
    assert f"canary failed: {errors} of 30 requests answered 5xx" in result.stderr
    assert "switched back to release a" in result.stderr
    assert os.readlink(root / "current") == "versions/1/a" and up.read_text() == "upstream a"
    assert re.fullmatch(r"\S+Z switch from=b to=a by=me@here\n", (root / "history.log").read_text())


def test_watch_switches_back_a_canary_whose_health_check_fails(tmp_path):
    # a 10-minute watch: run() gives up after 60 s, so returning at all means it did not wait for the end
    args, env, root, up, _ = _canary(tmp_path, "500", seconds="600")
    result = run(run_sh("watch.sh", *args), env)
    assert result.returncode == 1 and "health check http://shop.example/health/ answered 500 twice" in result.stderr
    assert os.readlink(root / "current") == "versions/1/a" and up.read_text() == "upstream a"


# --- the deploy lock ------------------------------------------------------------------------------------------

HOLDER = '{"by": "me@here", "pid": 7, "since": "2026-01-01T00:00:00Z"}'


def hold(lock: Path, holder: str = HOLDER, timeout: str = "45") -> tuple[subprocess.Popen, str]:
    """lock_hold.sh started as the engine starts it (its stdin a pipe the run keeps open): the process and
    the first line it printed."""
    from pinned.operations.lock import HOLD_SCRIPT
    from pinned.operations.scripts import sh
    proc = subprocess.Popen(["sh", "-c", sh(HOLD_SCRIPT, lock, holder, timeout).get_raw_value()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline()


def test_lock_holder_holds_until_its_stdin_closes_and_refuses_a_second(tmp_path):
    lock = tmp_path / "pinned-app.lock"
    first, said = hold(lock)
    assert said.startswith("held ")
    line = json.loads(said.removeprefix("held "))
    assert line == {**json.loads(HOLDER), "holder_pid": line["holder_pid"]} and line["holder_pid"] > 0
    assert lock.read_text() == said.removeprefix("held ")
    second, refused = hold(lock, HOLDER.replace("me@here", "them@there"))
    assert second.wait(timeout=10) == 3 and refused == f"refused {said.removeprefix('held ')}"
    first.stdin.write("\n")  # a heartbeat changes nothing
    first.stdin.flush()
    time.sleep(0.2)
    assert first.poll() is None and lock.exists()
    first.stdin.close()  # the run's connection closed
    assert first.wait(timeout=10) == 0 and not lock.exists()
    third, said = hold(lock)  # free again
    assert said.startswith("held ")
    third.stdin.close()
    assert third.wait(timeout=10) == 0 and not lock.exists()


def test_lock_holder_gives_up_without_heartbeat_and_ends_on_sigterm(tmp_path):
    lock = tmp_path / "pinned-app.lock"
    started = time.monotonic()
    quiet, said = hold(lock, timeout="1")  # stdin stays open, no heartbeat: a cut network
    assert said.startswith("held ")
    assert quiet.wait(timeout=10) == 0 and not lock.exists()
    assert 0.9 < time.monotonic() - started < 5
    hung, said = hold(lock)
    os.kill(json.loads(said[5:])["holder_pid"], signal.SIGTERM)  # what `pinned unlock` does
    assert hung.wait(timeout=10) == 0 and not lock.exists()
    hung.stdin.close()


def test_lock_holder_runs_the_undo_hook_when_it_ends(tmp_path):
    lock = tmp_path / "pinned-app.lock"
    marker = tmp_path / "lifted"
    holder, said = hold(lock)
    assert said.startswith("held ")
    Path(f"{lock}.undo").write_text(f'echo lifted > "{marker}"\n')  # written by a step, while held
    assert not marker.exists()
    holder.stdin.close()  # the run died: its end of the connection is gone
    holder.kill()
    holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "lifted\n" and not lock.exists() and not Path(f"{lock}.undo").exists()
    # The write freeze's hooks live in <lock>.undo.d/, one per host role: each runs.
    (undo_d := Path(f"{lock}.undo.d")).mkdir()
    (undo_d / "write-freeze").write_text(f'echo web >> "{marker}"\n')
    (undo_d / "db-freeze").write_text(f'echo db >> "{marker}"\n')
    marker.unlink()
    holder, said = hold(lock)
    holder.stdin.close()
    holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(marker.read_text().split()) == ["db", "web"] and not any(undo_d.iterdir())
    # A hook left behind by a holder killed on the host itself runs when the lock is next taken.
    marker.unlink()
    Path(f"{lock}.undo").write_text(f'echo lifted > "{marker}"\n')
    lock.write_text("a dead holder's line\n")
    holder, said = hold(lock)
    assert said.startswith("held ") and marker.exists() and not Path(f"{lock}.undo").exists()
    holder.stdin.close()
    holder.wait(timeout=10)


def test_unlock_ends_a_hung_holder_and_cleans_up_a_dead_one(tmp_path):
    from pinned.operations.lock import UNLOCK_SCRIPT
    from pinned.operations.scripts import sh
    lock = tmp_path / "pinned-app.lock"
    assert run(sh(UNLOCK_SCRIPT, lock)).stdout == ""  # nothing held
    holder, said = hold(lock)
    pid = json.loads(said[5:])["holder_pid"]
    Path(f"{lock}.undo").write_text(f'touch "{tmp_path}/undone"\n')
    out = run(sh(UNLOCK_SCRIPT, lock))
    assert out.returncode == 0 and out.stdout == f"{said[5:]}ended {pid}\n", out.stderr
    assert holder.wait(timeout=10) == 0 and not lock.exists() and (tmp_path / "undone").exists()
    holder.stdin.close()
    lock.write_text('{"by": "x@y", "holder_pid": 999999999}\n')  # its holder was killed on the host
    out = run(sh(UNLOCK_SCRIPT, lock))
    assert out.stdout.endswith("stale\n") and not lock.exists()


def test_lock_check_fails_once_the_hold_is_gone(tmp_path):
    lock = tmp_path / "pinned-app.lock"
    holder, said = hold(lock)
    line = said[5:].rstrip("\n")
    assert run(run_sh("lock_check.sh", lock, line)).returncode == 0
    assert run(run_sh("lock_check.sh", lock, line.replace("me@here", "x@y"))).returncode == 1
    holder.stdin.close()
    holder.wait(timeout=10)
    failed = run(run_sh("lock_check.sh", lock, line))
    assert failed.returncode == 1 and "no longer holds the deploy lock" in failed.stderr


# --- secrets and the database account -------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="the generator chowns the file to root: run as root (CI is)")
def test_secrets_generator_adds_missing_keys_and_keeps_values(tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "secrets.env"
    path.write_text("DB_PASSWORD=kept'\"\\ value\nOTHER=x=y\n")
    assert run(run_py("secrets_generate.py", path, group)).returncode == 0
    values = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert values["DB_PASSWORD"] == "kept'\"\\ value" and values["OTHER"] == "x=y"
    assert len(values["SECRET_KEY"]) >= 50
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_uid == 0 and info.st_gid == os.getgid()
    assert sorted(os.listdir(tmp_path)) == ["secrets.env"]
    text = path.read_text()
    assert run(run_py("secrets_generate.py", path, group)).returncode == 0
    assert path.read_text() == text  # nothing missing: nothing changes
    fresh = tmp_path / "fresh.env"
    assert run(run_py("secrets_generate.py", fresh, "root")).returncode == 0
    assert set(dict(line.split("=", 1) for line in fresh.read_text().splitlines())) == {"DB_PASSWORD", "SECRET_KEY"}
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640 and fresh.stat().st_gid == 0


def sql_literals(sql: str) -> tuple[str, list[str]]:
    """MariaDB's reading of the SQL: its single-quoted literals (backslash escapes) and the text with each
    literal replaced by ?."""
    skeleton, literals, i = [], [], 0
    while i < len(sql):
        if sql[i] != "'":
            skeleton.append(sql[i])
            i += 1
            continue
        value, i = [], i + 1
        while True:
            assert i < len(sql), f"unterminated literal in {sql!r}"
            if sql[i] == "\\":
                assert sql[i + 1] in "\\'", f"an escape the quoting never makes: {sql[i:i + 2]!r}"
                value.append(sql[i + 1])
                i += 2
            elif sql[i] == "'":
                i += 1
                break
            else:
                value.append(sql[i])
                i += 1
        literals.append("".join(value))
        skeleton.append("?")
    return "".join(skeleton), literals


def account_sql(tmp_path: Path, user: str, host: str, password: str, revoke: bool) -> str:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"SECRET_KEY=x\nDB_PASSWORD={password}\n", encoding="utf-8")
    result = run(run_py("account_sql.py", secrets, user, host, "app\\_v0 app\\_v1", "*" if revoke else "app\\_v%"))
    assert result.returncode == 0, result.stderr
    return result.stdout


VALUE = st.text(st.sampled_from(list("'\"\\`;-#%_ \tab1é")) | st.characters(min_codepoint=32, max_codepoint=126),
                min_size=1, max_size=24)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=VALUE, host=VALUE, password=VALUE, revoke=st.booleans())
def test_account_sql_quotes_every_value(tmp_path, user, host, password, revoke):
    skeleton, literals = sql_literals(account_sql(tmp_path, user, host, password, revoke))
    expected = ["CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?;", "ALTER USER ?@? IDENTIFIED BY ?;"]
    expected += (["REVOKE ALL PRIVILEGES, GRANT OPTION FROM ?@?;"] if revoke
                 else ["REVOKE ALL PRIVILEGES ON `app\\_v%`.* FROM ?@?;"])
    expected += ["GRANT ALL PRIVILEGES ON `app\\_v0`.* TO ?@?;", "GRANT ALL PRIVILEGES ON `app\\_v1`.* TO ?@?;"]
    assert skeleton == "\n".join(expected) + "\n"  # nothing but the statements outside the quotes
    assert literals == [user, host, password] * 2 + [user, host] * 3


def test_account_sql_with_quotes_and_backslashes(tmp_path):
    password, host = "pa'ss\\';DROP USER x; -- \\\\", "10.0.%' OR '1'='1\\"
    out = account_sql(tmp_path, "agroguia", host, password, True)
    assert "IDENTIFIED BY 'pa\\'ss\\\\\\';DROP USER x; -- \\\\\\\\';" in out
    assert "'agroguia'@'10.0.%\\' OR \\'1\\'=\\'1\\\\'" in out
    assert sql_literals(out)[1][:3] == ["agroguia", host, password]


def test_a_script_cannot_match_its_own_pgrep():
    """A script runs as `sh -c TEXT`: its text is its process's command line. stop.sh and freeze_web.sh wait
    while `pgrep -f` finds nginx workers shutting down; with a comment quoting those words in TEXT, pgrep found
    the script itself and every deploy that stopped a release waited the full 30 s."""
    for path in REMOTE.glob("*.sh"):
        text = script(path.name)
        assert "worker process is shutting down" not in text, path.name
        assert not [line for line in text.splitlines()[1:] if line.lstrip().startswith("#")], path.name


def _wait_for(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.02)


def test_build_guard_hook_stops_the_chain_it_guards_then_is_a_no_op(tmp_path):
    # A chained build (its own session, as an SSH command's is) whose first link is run_guard.sh: the hook it
    # leaves stops the whole chain — the step running now and every one after it.
    hook = tmp_path / "lock.undo.d" / "build-r1"
    done = tmp_path / "renamed"
    chain = f"sh {REMOTE / 'run_guard.sh'} {hook} && sleep 60 && touch {done}"
    proc = subprocess.Popen(["setsid", "sh", "-c", chain])
    try:
        _wait_for(hook)
        assert proc.poll() is None and (hook.parent.stat().st_mode & 0o777) == 0o700
        subprocess.run(["sh", str(hook)], check=True, timeout=20)
        assert proc.wait(timeout=10) == -signal.SIGTERM  # the chain's shell died by the signal
        assert not done.exists()
        subprocess.run(["sh", str(hook)], check=True, timeout=5)  # its group is gone: nothing to stop
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_run_guard_hook_in_wait_mode_lets_the_chain_finish_first(tmp_path):
    # A migration's guard: the hook returns only once the chain ended on its own — nothing killed it.
    hook = tmp_path / "lock.undo.d" / "migrate-r1"
    done = tmp_path / "migrated"
    chain = f"sh {REMOTE / 'run_guard.sh'} {hook} wait && sleep 1 && touch {done}"
    proc = subprocess.Popen(["setsid", "sh", "-c", chain])
    try:
        _wait_for(hook)
        assert proc.poll() is None  # the hook runs while the chain still does
        subprocess.run(["sh", str(hook)], check=True, timeout=30)
        assert proc.wait(timeout=10) == 0 and done.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_build_guard_hook_of_a_finished_chain_touches_no_other_process(tmp_path):
    hook = tmp_path / "undo" / "build-r1"
    subprocess.run(["setsid", "sh", "-c", f"sh {REMOTE / 'run_guard.sh'} {hook} && true"], check=True, timeout=10)
    bystander = subprocess.Popen(["setsid", "sleep", "60"])
    try:
        subprocess.run(["sh", str(hook)], check=True, timeout=10)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_python_scripts_get_their_libraries_inlined_as_the_host_runs_them():
    # A remote Python script imports a remote/*_lib.py on one line (found beside it when run locally); the text
    # sent to the host has the library in that line's place: one `python3 -c TEXT`, nothing to import there.
    from pinned.operations.scripts import IMPORT_LIB, PY_LIBS

    users = {}
    for path in remote_files():
        if path.suffix == ".py":
            libs = [m.group(1) + ".py" for line in path.read_text().splitlines() if (m := IMPORT_LIB.match(line))]
            if libs:
                users[path.name] = libs
                text = script(path.name)
                assert not any(IMPORT_LIB.match(line) for line in text.splitlines()), path.name
                compile(text, path.name, "exec")
    assert {lib for libs in users.values() for lib in libs} == set(PY_LIBS)
    assert {"observe.py", "record_loaded.py", "collectstatic.py", "verify_copy.py", "adopt_database.py"} <= set(users)
