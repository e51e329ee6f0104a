"""End to end: the state file names its own servers (`hosts:` by address, `ssh:`), as for real servers — no
`hosts: sandbox`, no `--limit`: `pinned --env NAME …` from the folder that holds the state files.

* A `deploy` login with passwordless sudo and a key of its own, on another SSH port (its sshd refuses that
  user on port 22): the site answers, a second run changes nothing; the secrets travel db → web host through
  this process's memory and never land in a temporary file on a host (watched with inotify), in the output
  or in the hosts' logs; the deploy lock, `pinned releases`, `backup` (and `--download`), `restore` run as
  root through sudo.
* A web host that only a jump host may reach over SSH (proven: a direct connection fails).
* A wrong key, and an unreachable host: one line naming the host, exit 1, nothing changed anywhere.
* Two environments on two hosts, deployed one after the other with no edit between them, with strict host
  key checking against a known_hosts file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ROOT, http_get
from pinned.sandbox import core

pytestmark = pytest.mark.sandbox
OWN, OWNDB, BEHIND, STAGE, PROD = "own", "owndb", "behind", "stage", "prod"
LOCK = "/run/lock/pinned-agroguia.lock"
SECRETS = "/etc/pinned/agroguia/secrets.env"
ID = r"\d{8}T\d{6}Z-agroguia_v\d+\.sql\.gz"

# Run on a host as root: reports every file created, written, moved or chmod-ed in the watched folders that
# holds the secrets file's content (its key names), with its mode (once per path and mode); ends when its
# stdin ends.
WATCH = r"""
import ctypes, os, select, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
wds = {libc.inotify_add_watch(fd, d.encode(), 0x8 | 0x4 | 0x80 | 0x100): d for d in sys.argv[1:]}
print("watching", flush=True)
seen = set()
while True:
    ready = select.select([fd, 0], [], [])[0]
    if 0 in ready and not os.read(0, 1024):
        break
    if fd in ready:
        buf, i = os.read(fd, 65536), 0
        while i < len(buf):
            wd, mask, cookie, size = struct.unpack_from("iIII", buf, i)
            path = os.path.join(wds[wd], buf[i + 16:i + 16 + size].rstrip(b"\0").decode())
            i += 16 + size
            try:
                mode = os.stat(path).st_mode & 0o777
                data = open(path, "rb").read()
            except OSError:
                continue
            if (b"SECRET_KEY=" in data or b"DB_PASSWORD=" in data) and (path, mode) not in seen:
                seen.add((path, mode))
                print("secrets %s %o" % (path, mode), flush=True)
"""
WATCHED = ("/tmp", "/var/tmp", "/dev/shm", "/home/deploy", "/root")


def root_ssh(host, command: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """`command` as root on a sandbox host (the sandbox's own key), `input` to its stdin."""
    key = core.Sandbox.load().ssh_key
    return subprocess.run(["ssh", *core.ssh_options(key), f"root@{host.address}", command], input=input,
                          capture_output=True, text=True, check=check, timeout=120)


class Folder:
    """A folder of state files, and `pinned --env NAME …` run from it (as a user does: no PINNED_STATE_DIR)."""

    def __init__(self, path: Path):
        self.path = path
        self.outputs: list[str] = []

    def write(self, env: str, hosts: dict, ssh: dict, release: str, **more) -> None:
        state = {"app": "agroguia", "repository": str(REPO), "release": release,
                 "django": {"settings": "agroguia.settings"}, "hosts": hosts, "ssh": ssh,
                 "site": {"health_url": "/health/"}, **more}
        (self.path / f"{env}.yaml").write_text(yaml.safe_dump(state, sort_keys=False))

    def pinned(self, env: str, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if k not in ("PINNED_STATE_DIR", "PINNED_ENV")}
        started = time.monotonic()
        proc = subprocess.run([str(ROOT / ".venv/bin/pinned"), "--env", env, *args], cwd=self.path, env=environ,
                              capture_output=True, text=True, timeout=timeout)
        print(f"$ pinned --env {env} {' '.join(args)}: exit {proc.returncode} in {time.monotonic() - started:.1f} s")
        self.outputs.append(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"pinned {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc

    def start(self, env: str, *args: str) -> subprocess.Popen:
        environ = {k: v for k, v in os.environ.items() if k not in ("PINNED_STATE_DIR", "PINNED_ENV")}
        return subprocess.Popen([str(ROOT / ".venv/bin/pinned"), "--env", env, *args], cwd=self.path, env=environ,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


def page(host, port: int = 80):
    return http_get(f"http://{host.address}:{port}/")


def rid(commits, tag: str) -> str:
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def tree(host) -> str:
    """What a deploy could have changed on a host: the app's files (names, sizes, times), its units, nginx's
    site, the databases, the lock."""
    return root_ssh(host, "find /srv/agroguia /etc/pinned /etc/nginx /etc/systemd/system -printf '%p %s %T@\\n' "
                          "2>/dev/null | sort; ls /var/lib/mysql; ls -a /run/lock").stdout


@pytest.fixture(scope="module")
def hosts(sandbox):
    """Five hosts, booted at once (roles come from each state file here, not from the sandbox)."""
    booted = sandbox.hosts([(name, ("web", "db")) for name in (OWN, OWNDB, BEHIND, STAGE, PROD)])
    return {h.name: h for h in booted}


@pytest.fixture(scope="module")
def deploy_key(hosts, tmp_path_factory) -> Path:
    """A `deploy` login with passwordless sudo on OWN and OWNDB, with its own ed25519 key (made here). OWN's
    sshd also listens on 2222, and refuses `deploy` on port 22: a deploy as `deploy` there must use 2222."""
    key = tmp_path_factory.mktemp("keys") / "deploy_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy@test", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    setup = ("set -e; useradd -m -s /bin/bash deploy; install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh; "
             f"printf '%s\\n' {shlex.quote(public)} > /home/deploy/.ssh/authorized_keys; "
             "chown deploy:deploy /home/deploy/.ssh/authorized_keys; "
             "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy; chmod 0440 /etc/sudoers.d/deploy")
    ports = ("printf 'Port 22\\nPort 2222\\nMatch LocalPort 22\\n    DenyUsers deploy\\n' "
             "> /etc/ssh/sshd_config.d/pinned-test.conf; sshd -t; systemctl restart ssh")
    root_ssh(hosts[OWN], f"{setup}; {ports}")
    root_ssh(hosts[OWNDB], setup)
    return key


def deploy_ssh(host, key: Path, port: int, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", *core.ssh_options(str(key)), "-p", str(port), f"deploy@{host.address}", command],
                          capture_output=True, text=True, timeout=60)


def start_watch(host) -> subprocess.Popen:
    key = core.Sandbox.load().ssh_key
    proc = subprocess.Popen(["ssh", *core.ssh_options(key), f"root@{host.address}",
                             f"python3 -c {shlex.quote(WATCH)} {' '.join(WATCHED)}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "watching", proc.stderr.read()
    return proc


def stop_watch(proc) -> list[str]:
    out, _ = proc.communicate(input="", timeout=30)
    return out.splitlines()


def sudo_state(folder: Folder, hosts, key: Path, release: str, env: str = "sudo", web: list | None = None) -> None:
    folder.write(env, {"web": web or [{"name": hosts[OWN].address, "ssh_port": 2222}], "db": hosts[OWNDB].address},
                 {"user": "deploy", "key": str(key), "host_key_checking": "no"}, release)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Folder:
    return Folder(tmp_path_factory.mktemp("own-servers"))


def test_a_deploy_login_with_sudo_on_another_port(hosts, deploy_key, folder, commits):
    web, db = hosts[OWN], hosts[OWNDB]
    # The login works as set up: key, sudo without a password, port 2222 only.
    assert deploy_ssh(web, deploy_key, 2222, "sudo -n id -u").stdout.strip() == "0"
    refused = deploy_ssh(web, deploy_key, 22, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
    sudo_state(folder, hosts, deploy_key, commits["A"]["commit"])

    # Files in the hosts' temporary folders are watched during the first deploy (the one that copies the
    # secrets): the watcher catches a file holding such content (a canary), so it would catch a leak.
    watches = {h.name: start_watch(h) for h in (web, db)}
    for host in (web, db):
        root_ssh(host, "printf 'SECRET_KEY=canary\\n' > /tmp/pinned-canary")
        assert watches[host.name].stdout.readline().strip() == "secrets /tmp/pinned-canary 644"
        root_ssh(host, "rm /tmp/pinned-canary")
    started = time.monotonic()
    first = folder.pinned("sudo", "deploy", "-y")
    print(f"first deploy through sudo: {time.monotonic() - started:.1f} s")
    seen = {name: stop_watch(proc) for name, proc in watches.items()}
    assert seen == {OWN: [], OWNDB: []}, f"the secrets passed through files: {seen}"
    out = first.stdout + first.stderr
    for kind in ("secrets-read", "secrets-copy"):  # they ran, on one host each, without an error
        assert re.search(rf"^ *[+~] {kind} .*\s1\s+1\s+-\s+-\s*$", out, re.M), out[-3000:]

    response = page(web)
    assert response.status == 200 and "Release: A" in response.body
    again = folder.pinned("sudo", "deploy", "-y")
    assert "No changes." in again.stdout, again.stdout[-2000:]

    # The secrets: the same on both hosts, root:agroguia 0640, and nowhere else — not in any output, not in
    # the hosts' logs (sudo logs command lines), not in a file under the folders anyone may read.
    secrets = root_ssh(db, f"cat {SECRETS}").stdout
    assert root_ssh(web, f"cat {SECRETS}").stdout == secrets
    assert root_ssh(web, f"stat -c '%a %U %G' {SECRETS}").stdout.strip() == "640 root agroguia"
    values = [line.split("=", 1)[1] for line in secrets.split() if "=" in line]
    assert len(values) == 2 and all(len(v) > 30 for v in values)

    # The commands that run as root through sudo.
    releases = json.loads(folder.pinned("sudo", "releases", "--json").stdout)["hosts"][web.address]
    assert [(r["id"], r["current"], r["status"]) for r in releases] == [(rid(commits, "A"), True, "ready")]
    backup = folder.pinned("sudo", "backup", "--download", str(folder.path / "dl")).stdout
    backup_id = re.search(rf"^({ID})  ", backup, re.M).group(1)
    local = folder.path / "dl" / backup_id
    assert "gzip -t: ok" in backup and local.stat().st_mode & 0o777 == 0o600
    remote_sum = root_ssh(db, f"sha256sum /var/backups/pinned/agroguia/{backup_id}").stdout.split()[0]
    assert hashlib.sha256(local.read_bytes()).hexdigest() == remote_sum
    assert backup_id in folder.pinned("sudo", "backups").stdout
    restored = folder.pinned("sudo", "restore", backup_id).stdout
    assert re.search(rf"restored \d+ tables from {re.escape(backup_id)} into agroguia_v0", restored), restored
    assert page(web).status == 200

    for host in (web, db):
        found = root_ssh(host, 'v=$(cat); journalctl --no-pager -o cat | grep -cF -e "$v"; '
                               'grep -rlsF -e "$v" /tmp /var/tmp /dev/shm /home /var/log /run /root; true',
                         input="\n".join(values)).stdout.split()
        assert found[0] == "0" and found[1:] == [], f"{host.name}: the secrets are in {found}"
    assert not any(v in out for v in values for out in folder.outputs)


def lock_on(host) -> str | None:
    """`owner mode` and the holder line of the lock file on the host, or None when there is none."""
    out = root_ssh(host, f"stat -c '%U %a' {LOCK} && cat {LOCK}", check=False)
    return out.stdout if out.returncode == 0 else None


def test_the_deploy_lock_is_roots_through_sudo(hosts, deploy_key, folder, commits):
    web, db = hosts[OWN], hosts[OWNDB]
    sudo_state(folder, hosts, deploy_key, commits["B"]["commit"])
    first = folder.start("sudo", "deploy")  # waits at the confirmation, holding the lock on both hosts
    deadline = time.monotonic() + 120
    while not (lock_on(web) and lock_on(db)):
        if first.poll() is not None or time.monotonic() > deadline:
            os.killpg(first.pid, signal.SIGKILL)
            raise AssertionError(f"the run never held the lock on both hosts:\n{first.communicate()[0][-3000:]}")
        time.sleep(0.1)
    for host in (web, db):
        owner, holder = lock_on(host).split("\n", 1)
        assert owner == "root 644" and json.loads(holder)["pid"] == first.pid, (host.name, owner, holder)
    second = folder.pinned("sudo", "deploy", "-y", check=False)
    assert second.returncode == 1
    assert re.search(rf"refused: \S+: agroguia is being deployed by \S+@\S+ \(pid {first.pid}, since \S+Z\)",
                     second.stdout + second.stderr), second.stdout[-2000:] + second.stderr[-2000:]
    os.killpg(first.pid, signal.SIGKILL)  # its connections close: each holder (root's, under sudo) ends
    first.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while lock_on(web) or lock_on(db):
        assert time.monotonic() < deadline, (lock_on(web), lock_on(db))
        time.sleep(0.1)
    folder.pinned("sudo", "deploy", "-y")
    assert "Release: B" in page(web).body


def problems(proc) -> list[str]:
    """The lines of a run's output that report something wrong."""
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if re.search(r"rror|Traceback|failed|Could not|No host", line)]


def test_a_wrong_key_or_an_unreachable_host_is_one_line_and_changes_nothing(hosts, deploy_key, folder, commits,
                                                                             tmp_path):
    web, db = hosts[OWN], hosts[OWNDB]
    wrong = tmp_path / "wrong_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    dead = core.Sandbox.load().subnet.rsplit(".", 1)[0] + ".250"  # nothing answers there
    started = time.monotonic()
    direct = subprocess.run(["ssh", *core.ssh_options(str(deploy_key)), f"deploy@{dead}", "true"],
                            capture_output=True, text=True, timeout=60)
    assert direct.returncode == 255, direct
    print(f"ssh to {dead}: {direct.stderr.strip()} ({time.monotonic() - started:.1f} s)")
    started = time.monotonic()
    before = {h.name: tree(h) for h in (web, db)}
    print(f"what is on the hosts, read in {time.monotonic() - started:.1f} s")
    ssh = {"user": "deploy", "key": str(deploy_key), "host_key_checking": "no"}
    folder.write("wrongkey", {"web": [{"name": web.address, "ssh_port": 2222, "ssh_key": str(wrong)}],
                              "db": db.address}, ssh, commits["C"]["commit"])
    folder.write("unreachable", {"web": [{"name": web.address, "ssh_port": 2222}, dead], "db": db.address}, ssh,
                 commits["C"]["commit"])
    expected = {
        "wrongkey": f"pinned: error: {web.address}: cannot connect over SSH (deploy@{web.address} port 2222): "
                    f"Authentication error (username=deploy, key={wrong}) (Authentication failed.); nothing was "
                    "changed on any host",
        "unreachable": rf"pinned: error: {re.escape(dead)}: cannot connect over SSH \(deploy@{re.escape(dead)}\): "
                       r"Could not connect \(.+\); nothing was changed on any host",
    }
    for env in ("wrongkey", "unreachable"):
        for args in (("deploy", "-y"), ("plan",)):
            proc = folder.pinned(env, *args, check=False)
            said = problems(proc)
            assert proc.returncode == 1 and len(said) == 1, (env, args, proc.stdout[-3000:], proc.stderr[-3000:])
            assert re.fullmatch(expected[env] if env == "unreachable" else re.escape(expected[env]), said[0]), said
    assert {h.name: tree(h) for h in (web, db)} == before  # no release, file, unit, database or lock more


def test_a_web_host_reached_only_through_a_jump_host(hosts, folder, commits):
    jump, target = hosts[OWN], hosts[BEHIND]
    key = core.Sandbox.load().ssh_key
    # On the target, SSH is dropped unless it comes from the jump host.
    subprocess.run(["ip", "netns", "exec", target.netns, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport",
                    "22", "!", "-s", jump.address, "-j", "DROP"], check=True)
    direct = subprocess.run(["ssh", *core.ssh_options(key), f"root@{target.address}", "true"], capture_output=True,
                            text=True, timeout=60)
    assert direct.returncode == 255 and "timed out" in direct.stderr, direct
    through = root_ssh(jump, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{target.address}/22 && head -c 7 <&3'")
    assert through.stdout == "SSH-2.0"  # the jump host does reach it
    folder.write("jump", {"web": [target.address], "db": target.address},
                 {"user": "root", "key": key, "proxy_jump": jump.address, "host_key_checking": "no"},
                 commits["A"]["commit"])
    folder.pinned("jump", "deploy", "-y")
    response = page(target)
    assert response.status == 200 and "Release: A" in response.body
    assert "No changes." in folder.pinned("jump", "plan").stdout


def test_two_environments_on_two_hosts_one_after_the_other(hosts, folder, commits):
    staging, production = hosts[STAGE], hosts[PROD]
    key = core.Sandbox.load().ssh_key
    # Strict host key checking, against a known_hosts file beside the state files (relative to them).
    scan = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", staging.address, production.address],
                          capture_output=True, text=True, check=True).stdout
    assert len(scan.splitlines()) == 2
    (folder.path / "known_hosts").write_text(scan)
    (folder.path / "empty_known_hosts").write_text("")
    ssh = {"user": "root", "key": key, "known_hosts": "known_hosts", "host_key_checking": "yes"}
    folder.write("staging", {"web": [staging.address], "db": staging.address}, ssh, commits["B"]["commit"])
    folder.write("production", {"web": [production.address], "db": production.address}, ssh, commits["A"]["commit"])
    folder.write("unknown", {"web": [production.address], "db": production.address},
                 {**ssh, "known_hosts": "empty_known_hosts"}, commits["A"]["commit"])
    unknown = folder.pinned("unknown", "plan", check=False)
    assert unknown.returncode == 1 and problems(unknown) == [
        f"pinned: error: {production.address}: cannot connect over SSH (root@{production.address}): SSH error "
        f"(StrictPolicy: No host key for {production.address} found in known_hosts); nothing was changed on any host"]

    started = time.monotonic()
    folder.pinned("staging", "deploy", "-y")
    folder.pinned("production", "deploy", "-y")
    print(f"staging then production, first deploys: {time.monotonic() - started:.1f} s")
    assert "Release: B" in page(staging).body and "Release: A" in page(production).body
    for env, host, tag in (("staging", staging, "B"), ("production", production, "A")):
        assert "No changes." in folder.pinned(env, "plan").stdout
        listed = json.loads(folder.pinned(env, "releases", "--json").stdout)["hosts"]
        assert list(listed) == [host.address] and [r["id"] for r in listed[host.address]] == [rid(commits, tag)]
