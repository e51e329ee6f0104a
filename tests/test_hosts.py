"""The state file's `hosts:` and `ssh:` → pyinfra's groups, and the errors a bad entry gets before any
host is contacted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pinned.state.hosts import Hosts, HostsError, SshOptions, inventory_groups, jump_config
from pinned.state.model import StateFileError, parse_state

ROOT = Path(__file__).resolve().parent.parent
BASE = {"app": "shop", "repository": ".", "release": "abcdef1", "django": {"settings": "shop.settings"}}


def state(**fields):
    return parse_state(yaml.safe_dump({**BASE, **fields}), "prod.yaml")


def test_the_issue_example_becomes_groups(tmp_path):
    key = tmp_path / "deploy_ed25519"
    key.write_text("k")
    s = state(hosts={"web": ["www1.example.com", {"name": "www2.example.com", "ssh_user": "deploy",
                                                   "ssh_port": 2222}],
                     "db": "db1.example.com"},
              ssh={"user": "deploy", "sudo": True, "key": "deploy_ed25519"})
    groups = inventory_groups(s.hosts, s.ssh, tmp_path)
    assert [n for n, _ in groups["web"]] == ["www1.example.com", "www2.example.com"]
    assert [n for n, _ in groups["db"]] == ["db1.example.com"]
    www1, www2 = dict(groups["web"])["www1.example.com"], dict(groups["web"])["www2.example.com"]
    assert www1 == {"address": "www1.example.com", "ssh_user": "deploy", "ssh_key": str(key), "_sudo": True}
    assert www2["ssh_port"] == 2222 and www2["ssh_user"] == "deploy"


def test_one_host_in_both_roles_keeps_its_options(tmp_path):
    s = state(hosts={"web": [{"name": "app1", "ssh_port": 2200, "address": "10.0.0.5"}], "db": "app1"})
    groups = inventory_groups(s.hosts, s.ssh, tmp_path)
    assert groups["web"] == groups["db"] == [("app1", {"address": "10.0.0.5", "ssh_port": 2200})]


def test_sudo_defaults_to_on_for_a_non_root_login(tmp_path):
    s = state(hosts={"web": ["a", {"name": "b", "ssh_user": "root"}], "db": "a"}, ssh={"user": "deploy"})
    groups = dict(inventory_groups(s.hosts, s.ssh, tmp_path)["web"])
    assert groups["a"].get("_sudo") is True and "_sudo" not in groups["b"]


@pytest.mark.parametrize("hosts, field", [
    ({"web": [], "db": "db1"}, "hosts.web"),
    ({"web": ["www1"]}, "hosts.db"),
    ({"web": ["bad host"], "db": "db1"}, "hosts.web.0"),
    ({"web": [{"name": "w", "ssh_port": 70000}], "db": "db1"}, "hosts.web.0.ssh_port"),
    ({"web": [{"name": "w", "password": "x"}], "db": "db1"}, "hosts.web.0.password"),
    ({"web": ["w;rm -rf /"], "db": "db1"}, "hosts.web.0"),
    ({"web": ["w", "w"], "db": "db1"}, "hosts"),
    ("production", "hosts"),
])
def test_a_bad_host_entry_names_the_file_and_field(hosts, field):
    with pytest.raises(StateFileError) as err:
        state(hosts=hosts)
    message = str(err.value)
    assert message.startswith("prod.yaml: ") and f"'{field}" in message and "\n" not in message


@pytest.mark.parametrize("ssh", [{"proxy_jump": "bastion;id"}, {"key": "$(id)"}, {"user": "Root!"},
                                 {"host_key_checking": "maybe"}, {"port": 0}])
def test_bad_ssh_options_are_refused(ssh):
    with pytest.raises(StateFileError, match=r"prod.yaml: field 'ssh\."):
        state(hosts={"web": ["w"], "db": "w"}, ssh=ssh)


def test_a_missing_key_file_is_an_error_before_connecting(tmp_path):
    s = state(hosts={"web": ["w"], "db": "w"}, ssh={"key": "nope/id_ed25519"})
    with pytest.raises(HostsError, match=r"w: ssh key .*nope/id_ed25519 does not exist"):
        inventory_groups(s.hosts, s.ssh, tmp_path)


def test_a_jump_host_gets_an_ssh_config_ending_with_the_users_own(tmp_path):
    s = state(hosts={"web": [{"name": "www1", "ssh_hostname": "10.0.0.7"}, "www2"], "db": "www2"},
              ssh={"proxy_jump": "admin@bastion:2222", "key": "/k", "host_key_checking": "no"})
    text = jump_config(s.hosts, s.ssh, tmp_path, user_config="Host *\n    ServerAliveInterval 30\n")
    assert "Host 10.0.0.7\n    ProxyJump admin@bastion:2222" in text
    assert "Host www2\n    ProxyJump admin@bastion:2222" in text
    assert "Host bastion\n    IdentityFile /k\n    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no" in text
    assert text.rstrip().endswith("ServerAliveInterval 30")
    assert jump_config(Hosts(web=["a"], db="a"), SshOptions(), tmp_path) is None
    groups = dict(inventory_groups(s.hosts, s.ssh.model_copy(update={"key": None}), tmp_path,
                                   ssh_config="/run/x.conf")["web"])
    # Not checking: no known_hosts is read or written; the jump host is named in messages (pinned/connect.py).
    assert groups["www1"]["ssh_known_hosts_file"] == "/dev/null" and groups["www1"]["ssh_config_file"] == "/run/x.conf"
    assert groups["www1"]["proxy_jump"] == "admin@bastion:2222"
    checked = state(hosts={"web": ["www1"], "db": "www1"}, ssh={"host_key_checking": "yes"})
    assert "ssh_known_hosts_file" not in dict(inventory_groups(checked.hosts, checked.ssh, tmp_path)["web"])["www1"]


@given(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True), min_size=1,
                max_size=5, unique=True),
       st.integers(min_value=1, max_value=65535))
def test_every_listed_host_is_in_its_groups_once(names, port):
    hosts = Hosts(web=names, db=names[-1])
    groups = inventory_groups(hosts, SshOptions(port=port), Path("/"))
    assert [n for n, _ in groups["web"]] == names
    assert groups["db"][0][0] == names[-1]
    assert all(d["ssh_port"] == port and d["address"] == n for n, d in groups["web"])


def test_inventory_refuses_a_bad_host_before_contacting_anything(tmp_path):
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump({**BASE, "repository": str(ROOT / ".build/agroguia"),
                                                        "hosts": {"web": ["www 1"], "db": "db1"}}))
    env = {**os.environ, "PINNED_STATE_DIR": str(tmp_path)}
    proc = subprocess.run([str(ROOT / ".venv/bin/pyinfra"), "-y", "inventory.py", "deploy.py", "--data",
                           "env=prod"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("-->")]
    assert len(errors) == 1 and "prod.yaml" in errors[0] and "'hosts.web.0'" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Connecting" not in proc.stdout


def test_inventory_needs_hosts_to_deploy(tmp_path, commits):
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump({**BASE, "repository": str(ROOT / ".build/agroguia"),
                                                        "release": commits["A"]["commit"]}))
    proc = subprocess.run([str(ROOT / ".venv/bin/pinned"), "--env", "prod", "plan"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "field 'hosts' is required" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bare_yes_and_no_mean_what_they_say():
    for text, word in (("no", "no"), ("yes", "yes"), ("accept-new", "accept-new")):
        s = parse_state(yaml.safe_dump({**BASE, "hosts": "sandbox"}) + f"ssh:\n  host_key_checking: {text}\n")
        assert s.ssh.host_key_checking == word


def test_a_host_in_both_roles_keeps_its_jump_host_when_the_db_names_it_bare(tmp_path):
    s = state(hosts={"web": [{"name": "app1", "proxy_jump": "bastion"}], "db": "app1"})
    assert "Host app1\n    ProxyJump bastion" in jump_config(s.hosts, s.ssh, tmp_path)
