"""The state file model: valid files load; every bad one is one clear error naming the file and field."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from pinned.state.model import State, StateFileError, load_state, parse_state, selected_env, state_path

GOOD = {
    "app": "agroguia",
    "repository": "../.build/agroguia",
    "release": "514177580aed19bef8b03068ed61c32728798fe5",
    "django": {"settings": "agroguia.settings"},
}


def bad(**changes) -> str:
    data = {**GOOD, **changes}
    for key, value in list(data.items()):
        if value is None:
            del data[key]
    return yaml.safe_dump(data)


def test_sandbox_state_file_loads():
    state = load_state(ROOT / "sandbox.yaml")
    assert isinstance(state, State)
    assert state.app == "agroguia" and state.site.port == 80 and state.django.wsgi_app == "pinned_runtime:application"


@pytest.mark.parametrize(
    "text, field, words",
    [
        (bad(site={"port": "eighty"}), "site.port", "integer"),
        (bad(site={"port": 70000}), "site.port", "65535"),
        (bad(colour="blue"), "colour", "not a known field"),
        (bad(release=None), "release", "required"),
        (bad(app="../x"), "app", "not allowed"),
        (bad(app="a;b"), "app", "not allowed"),
        (bad(app="Agroguia"), "app", "not allowed"),
        (bad(release="main; rm -rf /"), "release", "not allowed"),
        (bad(django={"settings": "x.settings", "project_dir": "../../etc"}), "django.project_dir", "relative path"),
        (bad(packages=["nginx && reboot"]), "packages.0", "not allowed"),
        (bad(users=[{"name": "deploy", "ssh_keys": ["ssh-ed25519 AAAA\nevil"]}]), "users.0.ssh_keys.0", "not allowed"),
        (bad(site={"server_names": ["exa mple.com"]}), "site.server_names.0", "not allowed"),
        (bad(users=[{"name": "root"}]), "users", "root"),
        (bad(repository="--upload-pack=touch /tmp/x"), "repository", "starting with '-'"),
    ],
)
def test_bad_state_file_is_one_clear_error(text, field, words):
    with pytest.raises(StateFileError) as err:
        parse_state(text, "state/prod.yaml")
    message = str(err.value)
    assert message.startswith("state/prod.yaml: ")
    assert f"'{field}'" in message
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "app: [unclosed", "42"])
def test_not_a_mapping_or_not_yaml(text):
    with pytest.raises(StateFileError, match=r"^state/x.yaml: "):
        parse_state(text, "state/x.yaml")


def test_environment_selection():
    assert selected_env(["pyinfra", "inventory.py", "deploy.py", "--data", "env=staging"], {}) == "staging"
    assert selected_env(["pyinfra", "--data=env=prod"], {}) == "prod"
    assert selected_env(["pyinfra"], {"PINNED_ENV": "qa"}) == "qa"
    assert selected_env(["pyinfra"], {}) == "sandbox"
    with pytest.raises(StateFileError):
        state_path("../etc/passwd")


def run_pyinfra_with_state(tmp_path: Path, text: str, env_name: str = "broken"):
    (tmp_path / f"{env_name}.yaml").write_text(text)
    env = {**os.environ, "PINNED_STATE_DIR": str(tmp_path), "PINNED_SANDBOX_PREFIX": "nohosts"}
    return subprocess.run([str(ROOT / ".venv/bin/pyinfra"), "-y", "inventory.py", "deploy.py", "--data",
                           f"env={env_name}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "text, field",
    [
        (bad(site={"port": "eighty"}), "site.port"),
        (bad(unknown=1), "unknown"),
        (bad(django=None), "django"),
        (bad(app="../x"), "app"),
        (bad(app="a;b"), "app"),
        (bad(release="0" * 40), "release"),  # well-formed but not a commit of the repository
    ],
)
def test_pyinfra_stops_before_connecting(commits, tmp_path, text, field):
    text = text.replace("../.build/agroguia", str(ROOT / ".build" / "agroguia"))
    proc = run_pyinfra_with_state(tmp_path, text)
    assert proc.returncode != 0
    assert f"{tmp_path}/broken.yaml" in proc.stderr and f"'{field}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Connecting to hosts" not in proc.stderr + proc.stdout


def test_missing_state_file(tmp_path):
    env = {**os.environ, "PINNED_STATE_DIR": str(tmp_path)}
    proc = subprocess.run([str(ROOT / ".venv/bin/pyinfra"), "-y", "inventory.py", "deploy.py", "--data",
                           "env=nowhere"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no state file for environment 'nowhere'" in proc.stderr


@pytest.mark.parametrize("field, value", [
    ("app", "agroguia\n"), ("release", "a" * 40 + "\n"),
])
def test_a_trailing_newline_is_not_a_valid_value(field, value):
    with pytest.raises(StateFileError):
        parse_state(yaml.safe_dump({**GOOD, field: value}), "s.yaml")


def test_project_dir_and_env_names_reject_newlines():
    with pytest.raises(StateFileError):
        parse_state(yaml.safe_dump({**GOOD, "django": {"settings": "a.settings", "project_dir": "src\n"}}), "s.yaml")
    with pytest.raises(StateFileError):
        state_path("prod\n")


def test_the_demo_state_file_pins_release_a_of_the_example_repository(commits):
    """`make demo` deploys sandbox.yaml: its pin must be the example repository's A as built today."""
    demo = yaml.safe_load((ROOT / "sandbox.yaml").read_text())
    assert demo["release"] == commits["A"]["commit"]
