"""Fuzzed state files (hypothesis): whatever the input, one error line naming the file — never a traceback,
never a command on a host. The check runs before pyinfra connects, so no host is contacted."""

from __future__ import annotations

import os
import subprocess

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from pinned.state.model import State, StateFileError, parse_state

NASTY = st.sampled_from([
    "", " ", "..", "../../etc/passwd", "/etc/shadow", "a;b", "$(reboot)", "`id`", "x\ny", "x\0y", "-rf",
    "--upload-pack=touch /tmp/p", "'; DROP DATABASE x; --", "${IFS}", "a b", "é", "\u202e", "*", "~root",
    "9" * 400, "-1", "1e999", "null", "true", "{}", "[]", "%s%n", "\\", "a" * 5000,
])
SCALARS = st.one_of(NASTY, st.text(max_size=60), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True), st.booleans(), st.none())
VALUES = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                          st.dictionaries(st.text(max_size=12), children, max_size=4)),
                      max_leaves=12)
FIELDS = ["app", "repository", "release", "django", "site", "packages", "users", "extra"]
SUBFIELDS = {"django": ["settings", "wsgi", "project_dir", "requirements"],
             "site": ["server_names", "port", "static_url", "health_url", "workers"]}


@st.composite
def state_documents(draw):
    doc = {"app": "agroguia", "repository": "../repo", "release": "a" * 40, "django": {"settings": "a.settings"}}
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
        if field in SUBFIELDS and draw(st.booleans()):
            doc[field] = dict(doc.get(field) or {})
            for sub in draw(st.lists(st.sampled_from(SUBFIELDS[field]), min_size=1, max_size=3, unique=True)):
                doc[field][sub] = draw(VALUES)
        elif field == "users" and draw(st.booleans()):
            doc["users"] = [{"name": draw(VALUES), "ssh_keys": draw(st.lists(VALUES, max_size=2)),
                             "sudo": draw(VALUES)}]
        else:
            doc[field] = draw(VALUES)
    return doc


def as_text(doc, raw: bytes | None) -> str:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        text = repr(doc)
    return text if raw is None else raw.decode("utf-8", errors="replace")


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(state_documents(), st.one_of(st.none(), st.binary(max_size=200)))
def test_fuzzed_state_files_give_one_error_line_or_a_valid_state(doc, raw):
    text = as_text(doc, raw)
    try:
        state = parse_state(text, "state/fuzz.yaml")
    except StateFileError as exc:
        message = str(exc)
        assert message.startswith("state/fuzz.yaml: ")
        assert "\n" not in message.replace("\\n", "")
        assert "Traceback" not in message
        return
    # Accepted: then every value that can reach a shell, a path or SQL is of the safe shapes.
    assert isinstance(state, State)
    assert state.app.replace("_", "").isalnum() and state.app.islower()
    assert all(c in "0123456789abcdef" for c in state.release)
    assert ".." not in state.django.project_dir.split("/") and not state.django.project_dir.startswith("/")
    for user in state.users:
        assert all("\n" not in key for key in user.ssh_keys)


def test_fuzzed_files_through_pyinfra_never_reach_a_host(tmp_path):
    """A few of them through the real command line: exit 1, one message, nothing connected."""
    cases = ["app: '$(reboot)'\n", "app: [1, 2]\n", "{{{{\n", "release: 1e999\n", "\0\0\0",
             yaml.safe_dump({"app": "ok", "repository": "-x", "release": "a" * 40, "django": {"settings": "s"}})]
    env = {**os.environ, "PINNED_STATE_DIR": str(tmp_path), "PINNED_SANDBOX_PREFIX": "nohosts"}
    for text in cases:
        (tmp_path / "fuzz.yaml").write_text(text)
        proc = subprocess.run([str(ROOT / ".venv/bin/pyinfra"), "-y", "inventory.py", "deploy.py", "--data",
                               "env=fuzz"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, output
        assert "Traceback" not in output and "Connecting to hosts" not in output
        assert [line for line in proc.stderr.splitlines() if line.startswith("pinned: error:")]


def not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.binary(min_size=1, max_size=300).filter(not_utf8))
def test_a_state_file_that_is_not_utf8_through_the_cli(tmp_path_factory, raw):
    """Random bytes (not UTF-8 text) as the state file, through the real `pinned` command: exactly one line on
    stderr naming the file, exit 1, no traceback."""
    state_dir = tmp_path_factory.mktemp("bytes")
    (state_dir / "x.yaml").write_bytes(raw)
    env = {**os.environ, "PINNED_STATE_DIR": str(state_dir), "PINNED_SANDBOX_PREFIX": "nohosts"}
    proc = subprocess.run([str(ROOT / ".venv/bin/pinned"), "--env", "x", "plan"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    assert proc.returncode == 1, output[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "x.yaml" in lines[0] and "UTF-8" in lines[0], lines[0]
