"""Observing a host, without hosts: parse() is strict (a failed probe never passes for "absent"), and the
real observe script, run on this machine, tells expected exit statuses from failures. What needs systemd
or MariaDB is driven by fake `systemctl` / `mysql` / `dpkg-query` executables put first on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from pinned.operations.facts import AppState, observe_host, observe_request
from pinned.state.layout import Layout
from pinned.state.observed import HostObserved, ProbeError, describe_probe_error, parse

OBSERVE = ROOT / "operations" / "remote" / "observe.py"
MISSING = "pinned-no-such-package"
APP = "pinnedtest"
LAYOUT = Layout(APP)


def document(**extra) -> str:
    data = {"python": "3.11", "packages": ["nginx"], "units": {}, "mysql": {"running": False}}
    data.update(extra)
    return json.dumps(data)


# parse(): strict -------------------------------------------------------------------------------------------


def test_parse_reads_a_clean_document():
    observed = parse(document())
    assert observed.reachable_python and observed.packages == {"nginx"}


def test_parse_raises_on_reported_errors_naming_each_probe():
    errors = [{"probe": "packages", "status": 2, "detail": "dpkg-query: error: database locked\nsecond line"},
              {"probe": "mysql-grants", "status": 1, "detail": "ERROR 2002 (HY000): Can't connect"}]
    with pytest.raises(ProbeError) as info:
        parse(document(errors=errors))
    exc = info.value
    assert exc.probes == ("packages", "mysql-grants")
    assert exc.errors[0]["status"] == 2 and "database locked" in exc.errors[0]["detail"]
    line = describe_probe_error("db1", exc)
    assert line.startswith("pinned: error: db1: probe packages failed: dpkg-query: error: database locked")
    assert "probe mysql-grants failed: ERROR 2002" in line
    assert "\n" not in line


@pytest.mark.parametrize("output", ["", "   \n", "\n\n"])
def test_parse_raises_on_empty_output(output):
    with pytest.raises(ProbeError) as info:
        parse(output)
    assert info.value.probes == ("observe",)


def test_parse_raises_on_output_that_is_not_json_naming_it_truncated():
    output = "Traceback (most recent call last):\n" + "x" * 5000
    with pytest.raises(ProbeError) as info:
        parse(output)
    assert info.value.probes == ("observe",)
    message = describe_probe_error("web1", info.value)
    assert "not JSON" in message and "Traceback" in message and len(message) < 400


@pytest.mark.parametrize("output", ["[1, 2]", '{"packages": []}', "null"])
def test_parse_raises_on_json_that_is_not_the_document(output):
    with pytest.raises(ProbeError):
        parse(output)


def test_parse_reports_the_shell_guards_error_line_after_partial_output():
    output = '{"python": "3.11", "pack\n{"errors": [{"probe": "observe", "status": 137, "detail": "killed"}]}'
    with pytest.raises(ProbeError) as info:
        parse(output)
    assert info.value.probes == ("observe",) and info.value.errors[0]["status"] == 137


def test_empty_value_is_still_built_directly():
    assert HostObserved().packages == frozenset() and not HostObserved().reachable_python


# The real observe script, run here ----------------------------------------------------------------------


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def systemctl(bin_dir: Path, mariadb: str = "inactive", list_units: str = "exit 0", show: str = "") -> None:
    """A fake systemctl: `list-units` runs `list_units`; `show` prints one block per unit (like systemd:
    inactive and not enabled, mariadb in state `mariadb`) unless `show` replaces it."""
    fake(bin_dir, "systemctl", f"""case "$1" in
  list-units) {list_units} ;;
  show) {show or 'shift 3; first=1; for unit; do [ "$first" ] || echo; first=; '
                 'if [ "$unit" = mariadb.service ]; then echo ActiveState=' + mariadb + '; '
                 'else echo ActiveState=inactive; fi; '
                 'if [ "$unit" = nginx.service ]; then echo UnitFileState=disabled; else echo UnitFileState=; fi; '
                 'done; exit 0'} ;;
esac
echo "fake systemctl: unexpected $*" >&2; exit 64
""")


def run_observe(bin_dir: Path | None, packages=("bash", MISSING)) -> dict:
    request = observe_request(app=APP, root=LAYOUT.root, unit_prefix=LAYOUT.unit_prefix,
                              db_pattern=LAYOUT.database_regex,
                              users=[], packages=list(packages), paths=[], files=[],
                              secrets="/nonexistent/secrets", history="/nonexistent/history")
    env = dict(os.environ)
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([sys.executable, str(OBSERVE), request], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    return json.loads(proc.stdout)


needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs dpkg-query (a Debian machine)")


@needs_dpkg
def test_real_dpkg_query_reports_installed_packages_when_one_is_missing(tmp_path):
    # dpkg-query exits 1 here (MISSING was never installed): an answer, not a failure.
    data = run_observe(None, packages=("bash", "dpkg", MISSING))
    assert {"bash", "dpkg"} <= set(data["packages"]) and MISSING not in data["packages"]
    assert not [e for e in data.get("errors", ()) if e["probe"] == "packages"]
    # Whatever else failed here must be systemd's (not PID 1 on this machine): the units probes only.
    assert {e["probe"] for e in data.get("errors", ())} <= {"units", "unit-state"}


@needs_dpkg
def test_real_observe_with_inactive_units_parses_clean(tmp_path):
    systemctl(tmp_path)
    observed = parse(json.dumps(run_observe(tmp_path)))
    assert "bash" in observed.packages and MISSING not in observed.packages
    assert observed.units["nginx.service"] == {"active": "inactive", "enabled": False}
    assert observed.units["mariadb.service"] == {"active": "inactive", "enabled": False}
    assert not observed.unit_active("nginx.service") and not observed.mysql_running


@needs_dpkg
def test_release_units_are_listed_with_their_state(tmp_path):
    systemctl(tmp_path, list_units=f'echo "{APP}@r1.service loaded failed failed pinned release"; exit 0')
    observed = parse(json.dumps(run_observe(tmp_path)))
    # list-units' ACTIVE column is the unit's ActiveState (what `systemctl is-active` prints).
    assert observed.units[f"{APP}@r1.service"] == {"active": "failed", "enabled": False}


@needs_dpkg
def test_a_list_units_line_without_a_state_is_an_error(tmp_path):
    systemctl(tmp_path, list_units=f'echo "{APP}@r1.service"; exit 0')
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(run_observe(tmp_path)))
    assert info.value.probes == ("units",) and f"{APP}@r1.service" in info.value.errors[0]["detail"]


def test_a_show_answer_missing_a_unit_is_an_error_not_inactive(tmp_path):
    systemctl(tmp_path, show="echo ActiveState=active; echo UnitFileState=enabled; exit 0")  # one block of two
    data = run_observe(tmp_path, packages=())
    assert data["units"]["nginx.service"] == {"active": None, "enabled": None}
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(data))
    assert info.value.probes == ("unit-state",)


def test_dpkg_query_failing_otherwise_is_a_packages_error(tmp_path):
    systemctl(tmp_path)
    fake(tmp_path, "dpkg-query", 'echo "dpkg-query: error: unable to access the dpkg database" >&2; exit 2\n')
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(run_observe(tmp_path)))
    assert info.value.probes == ("packages",) and info.value.errors[0]["status"] == 2
    assert "unable to access" in info.value.errors[0]["detail"]


def test_systemctl_failures_are_errors_not_inactive(tmp_path):
    systemctl(tmp_path, list_units='echo "Failed to connect to bus: Host is down" >&2; exit 1',
              show='echo "Failed to connect to bus: Host is down" >&2; exit 1')
    data = run_observe(tmp_path, packages=())
    assert data["units"]["nginx.service"]["active"] is None
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(data))
    assert info.value.probes == ("units", "unit-state")
    assert "nginx.service, mariadb.service: Failed to connect to bus" in describe_probe_error("web1", info.value)


def test_failing_mysql_while_mariadb_is_active_is_an_error(tmp_path):
    systemctl(tmp_path, mariadb="active")
    fake(tmp_path, "mysql", "echo \"ERROR 2002 (HY000): Can't connect to local server through socket\" >&2; exit 1\n")
    data = run_observe(tmp_path, packages=())
    assert [e["probe"] for e in data["errors"]] == ["mysql-databases"]  # one failure, and the script went on
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(data))
    assert info.value.probes == ("mysql-databases",)
    assert describe_probe_error("db1", info.value) == (
        "pinned: error: db1: probe mysql-databases failed: ERROR 2002 (HY000): Can't connect to local server "
        "through socket")


def test_failing_grants_query_is_an_error_and_the_rest_is_read(tmp_path):
    systemctl(tmp_path, mariadb="active")
    fake(tmp_path, "mysql", f"""case "$*" in
  *"SHOW GRANTS"*) echo "ERROR 1045 (28000): Access denied" >&2; exit 1 ;;
  *) printf 'db\\t{APP}_v1\\nuser\\t{APP}@localhost\\n'; exit 0 ;;
esac
""")
    data = run_observe(tmp_path, packages=())
    assert data["mysql"]["databases"] == [f"{APP}_v1"] and data["mysql"]["running"]
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(data))
    assert info.value.probes == ("mysql-grants",)


def test_working_mysql_is_read(tmp_path):
    systemctl(tmp_path, mariadb="active")
    fake(tmp_path, "mysql", f"""case "$*" in
  *"SHOW GRANTS"*) printf "@@0\\nGRANT USAGE ON *.* TO x\\nGRANT ALL PRIVILEGES ON \\`{APP}\\\\_v%%\\`.* TO x\\n" ;;
  *) printf 'db\\t{APP}_v1\\nuser\\t{APP}@localhost\\nstats\\t{APP}_v1\\t3\\t10\\t4096\\n' ;;
esac
""")
    observed = parse(json.dumps(run_observe(tmp_path, packages=())))
    assert observed.mysql_running and observed.databases == {f"{APP}_v1"}
    assert list(observed.db_users) == [f"{APP}@localhost"] and len(observed.db_users[f"{APP}@localhost"]) == 1
    assert observed.db_stats == {f"{APP}_v1": (3, 10, 4096)}


def test_every_accounts_grants_come_from_one_mysql_call_split_by_their_markers(tmp_path):
    # The app's account and a preview's: one SHOW GRANTS each, in one mysql command; a marker row before
    # each says whose grants follow.
    systemctl(tmp_path, mariadb="active")
    log = tmp_path / "mysql.log"
    fake(tmp_path, "mysql", f"""echo "$*" >> {log}
case "$*" in
  *"SHOW GRANTS"*) printf "@@0\\nGRANT SELECT ON app TO a\\n@@1\\nGRANT USAGE ON *.* TO p\\nGRANT ALL ON pv TO p\\n" ;;
  *) printf 'db\\t{APP}_v1\\nuser\\t{APP}@localhost\\npv-db\\t{APP}_pv_b\\npv-user\\t{APP}_pv_b@localhost\\n' ;;
esac
""")
    request = json.loads(observe_request(
        app=APP, root=LAYOUT.root, unit_prefix=LAYOUT.unit_prefix, db_pattern=LAYOUT.database_regex, users=[],
        packages=[], paths=[], files=[], secrets="/nonexistent/secrets", history="/nonexistent/history",
        previews={"db_regex": f"^{APP}_pv_[a-z0-9_]+$", "globs": [], "unit_prefix": f"{APP}-pv-"}))
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([sys.executable, str(OBSERVE), json.dumps(request)], capture_output=True, text=True,
                          env=env)
    data = json.loads(proc.stdout)
    assert "errors" not in data
    assert data["mysql"]["users"] == {f"{APP}@localhost": ["GRANT SELECT ON app TO a"]}
    assert data["previews"]["users"] == {f"{APP}_pv_b@localhost": ["GRANT ALL ON pv TO p"]}
    assert data["previews"]["databases"] == [f"{APP}_pv_b"] and data["mysql"]["databases"] == [f"{APP}_v1"]
    assert len(log.read_text().splitlines()) == 2  # names and sizes, then every grant


def test_grants_missing_an_accounts_marker_are_an_error(tmp_path):
    systemctl(tmp_path, mariadb="active")
    fake(tmp_path, "mysql", f"""case "$*" in
  *"SHOW GRANTS"*) printf "GRANT SELECT ON app TO a\\n" ;;
  *) printf 'db\\t{APP}_v1\\nuser\\t{APP}@localhost\\n' ;;
esac
""")
    with pytest.raises(ProbeError) as info:
        parse(json.dumps(run_observe(tmp_path, packages=())))
    assert info.value.probes == ("mysql-grants",)


def test_a_crash_in_the_script_is_reported_as_the_observe_probe(tmp_path):
    proc = subprocess.run([sys.executable, str(OBSERVE), "{}"], capture_output=True, text=True)  # no "app"
    assert proc.returncode == 0
    with pytest.raises(ProbeError) as info:
        parse(proc.stdout)
    assert info.value.probes == ("observe",) and "KeyError" in info.value.detail


# The fact: the shell guard, and how pyinfra hands errors over ----------------------------------------------


def fact_command() -> str:
    request = observe_request(app=APP, root=LAYOUT.root, unit_prefix=LAYOUT.unit_prefix,
                              db_pattern=LAYOUT.database_regex,
                              users=[], packages=[], paths=[], files=[],
                              secrets="/nonexistent/secrets", history="/nonexistent/history")
    return AppState().command(request).get_raw_value()


def run_fact_command(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", fact_command()], capture_output=True, text=True, env={"PATH": path})


def test_fact_command_reports_missing_python3_as_an_error(tmp_path):
    proc = run_fact_command(str(tmp_path))  # an empty PATH directory: no python3
    assert proc.returncode == 0
    with pytest.raises(ProbeError) as info:
        parse(proc.stdout)
    assert info.value.probes == ("python3",)


def test_fact_command_reports_a_python3_that_dies(tmp_path):
    fake(tmp_path, "python3", "echo '{\"python\": \"3.1'; kill -9 $$\n")
    proc = run_fact_command(str(tmp_path))
    assert proc.returncode == 0
    with pytest.raises(ProbeError) as info:
        parse(proc.stdout)
    assert info.value.probes == ("observe",) and info.value.errors[0]["status"] == 137


def test_fact_command_runs_the_script(tmp_path):
    systemctl(tmp_path)
    (tmp_path / "python3").symlink_to(sys.executable)
    proc = run_fact_command(f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert proc.returncode == 0 and parse(proc.stdout).reachable_python


def test_fact_never_defaults_to_an_empty_host():
    # pyinfra returns default() when the command fails or prints nothing, and a requires_command that is
    # missing turns into default() too: none of those may look like an empty host.
    assert AppState().default() is None
    assert AppState().requires_command() is None

    class Host:
        def get_fact(self, cls, request):
            return None

    with pytest.raises(ProbeError) as info:
        observe_host(Host(), "{}")
    assert info.value.probes == ("observe",)


@pytest.fixture
def local_host():
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all

    inventory = Inventory((["@local"], {}))
    connect_all(State(inventory, Config()))
    return inventory.get_host("@local")


def test_probe_error_propagates_out_of_pyinfra_get_fact(tmp_path, monkeypatch, local_host):
    systemctl(tmp_path, list_units='echo "Failed to connect to bus" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    request = observe_request(app=APP, root=LAYOUT.root, unit_prefix=LAYOUT.unit_prefix,
                              db_pattern=LAYOUT.database_regex,
                              users=[], packages=[], paths=[], files=[],
                              secrets="/nonexistent/secrets", history="/nonexistent/history")
    with pytest.raises(ProbeError) as info:
        local_host.get_fact(AppState, request)
    assert info.value.probes == ("units",)


def test_observe_host_through_pyinfra(tmp_path, monkeypatch, local_host):
    systemctl(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    request = observe_request(app=APP, root=LAYOUT.root, unit_prefix=LAYOUT.unit_prefix,
                              db_pattern=LAYOUT.database_regex,
                              users=[], packages=[], paths=[], files=[],
                              secrets="/nonexistent/secrets", history="/nonexistent/history")
    observed = observe_host(local_host, request)
    assert observed.reachable_python and observed.units["nginx.service"]["active"] == "inactive"


@needs_dpkg
def test_a_not_found_inactive_stub_is_no_unit_but_a_not_found_running_one_is(tmp_path):
    """systemd lists a removed unit it was asked about as `not-found inactive` until it forgets it: a preview
    removed a moment ago must not be planned for removal again (tests/test_rollout.py saw that plan once)."""
    systemctl(tmp_path, list_units=(
        f'echo "{APP}-pv-mig.service not-found inactive dead {APP}-pv-mig.service"; '
        f'echo "{APP}@r1.service not-found active running pinned release (its file removed by hand)"; exit 0'))
    observed = parse(json.dumps(run_observe(tmp_path)))
    assert f"{APP}-pv-mig.service" not in observed.units
    assert observed.units[f"{APP}@r1.service"] == {"active": "active", "enabled": False}
