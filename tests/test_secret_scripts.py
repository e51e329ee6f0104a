"""The remote scripts of the app's secrets, run here on real files in a tmp folder as the host runs them:
`pinned secret set/unset` (secret_store.py: the value on standard input), the secrets generator dropping a
name no longer declared, and the loaded record (record_loaded.py), whose fingerprints must be the observe
script's, or the plan would restart the release on every run. Needs root (the scripts chown to root)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pinned.operations.scripts import run_py, script
from pinned.operations.secrets import store_command
from pinned.state.desired import env_quote

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts chown to root")
VALUE = "tok $HOME \"q\" 'x' \\ `id` ${PATH}  é\tend"


def run(command, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command.get_raw_value()], input=stdin, capture_output=True, text=True,
                          timeout=60)


def observed_fingerprints(path) -> dict:
    """What the observe script reports for a secrets file (its observe_secrets function, run here)."""
    text = script("observe.py")  # as the host runs it (its secrets_lib.py inlined)
    code = text[:text.index("\ntry:\n    out = main(")] + f"\nprint(json.dumps(observe_secrets({str(path)!r})))\n"
    out = subprocess.run(["python3", "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["fingerprints"]


def test_set_and_unset_keep_other_lines_and_never_print_the_value(tmp_path):
    path = tmp_path / "pinned" / "secrets.env"
    path.parent.mkdir()
    path.write_text("DB_PASSWORD=abc\nSECRET_KEY=def\n")
    done = run(store_command(str(path), "no-such-group-here", "set", "API_TOKEN"), stdin=VALUE)
    assert done.returncode == 0, done.stderr
    assert VALUE not in done.stdout + done.stderr
    assert path.read_text() == f"API_TOKEN={env_quote(VALUE)}\nDB_PASSWORD=abc\nSECRET_KEY=def\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # no app group yet: root only
    again = run(store_command(str(path), "no-such-group-here", "set", "API_TOKEN"), stdin="new")
    assert again.returncode == 0 and path.read_text().count("API_TOKEN=") == 1
    bad = run(store_command(str(path), "no-such-group-here", "set", "API_TOKEN"), stdin="a\nb")
    assert bad.returncode != 0 and "control character" in bad.stderr and 'API_TOKEN="new"' in path.read_text()
    gone = run(store_command(str(path), "no-such-group-here", "unset", "API_TOKEN"))
    assert gone.returncode == 0 and path.read_text() == "DB_PASSWORD=abc\nSECRET_KEY=def\n"
    missing = run(store_command(str(path), "no-such-group-here", "unset", "API_TOKEN"))
    assert missing.returncode != 0 and "no value" in missing.stderr


def test_the_generator_drops_undeclared_names_and_keeps_the_rest(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text(f"API_TOKEN={env_quote(VALUE)}\nDB_PASSWORD=abc\nOLD=x\nSECRET_KEY=def\n")
    done = run(run_py("secrets_generate.py", str(path), "root", "OLD"))
    assert done.returncode == 0, done.stderr
    assert path.read_text() == f"API_TOKEN={env_quote(VALUE)}\nDB_PASSWORD=abc\nSECRET_KEY=def\n"


def test_the_loaded_record_has_the_observe_scripts_fingerprints(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text(f"API_TOKEN={env_quote(VALUE)}\nDB_PASSWORD=abc\nSECRET_KEY=def\n")
    loaded = tmp_path / "loaded.json"
    done = run(run_py("record_loaded.py", str(loaded), str(path), json.dumps({"GREETING": "0123"})))
    assert done.returncode == 0, done.stderr
    record = json.loads(loaded.read_text())
    fingerprints = observed_fingerprints(path)
    assert record == {"env": {"GREETING": "0123"}, "secrets": fingerprints}
    assert set(fingerprints) == {"API_TOKEN", "DB_PASSWORD", "SECRET_KEY"}
    assert all(len(f) == 12 and VALUE not in f for f in fingerprints.values())
    path.write_text(f"API_TOKEN={env_quote(VALUE + '!')}\nDB_PASSWORD=abc\nSECRET_KEY=def\n")
    changed = observed_fingerprints(path)
    assert changed["API_TOKEN"] != fingerprints["API_TOKEN"] and changed["SECRET_KEY"] == fingerprints["SECRET_KEY"]
