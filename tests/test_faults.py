"""End to end: faults injected where they hurt, each at a phase observed on the host (never a random sleep).

A deploy (pyinfra in its own session, unbuffered output) is watched: when its output shows the operation of
the phase (`--> Starting operation: + database agroguia_v1`, `~ migrate agroguia_vN`, `~ switch ...`) AND the
host shows that phase's work really running (mysqldump on the db host, `manage.py migrate`, the release's
`.building` folder), the fault is injected: SIGKILL of the whole run, a web host's network cut, MariaDB
stopped, a full disk. After each: the site answers 200 with one whole release, and `current`, nginx's upstream
and the page agree on every web host; writes answer 201 or 503 + Retry-After (never another 5xx); the next
run converges (`pinned plan --detailed-exitcode` exits 0) and lifts any write freeze (a POST is stored).

Phase order of a deploy (state/plan.py PHASES): database (the copy) → prepare (the build) → migrate → schema
→ start → switch. So the build runs after the copy, not before it.

One host (web + db) for the phase kills, MariaDB and the full disk (its /srv is a 512 MiB tmpfs, so filling
it never fills this machine's disk); a 4 web + 1 db topology, booted once, for the partial switch and the
network cut.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import PREFIX, ROOT, Env, http_get

pytestmark = pytest.mark.sandbox
HOST = "flt"
WEBS = ["fw1", "fw2", "fw3", "fw4"]
DB = "fdb"
SRV_SIZE = "512M"
WAIT = 120  # seconds at most for a phase to show


def rid(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def tags_by_rid(commits):
    return {rid(commits, t): t for t in commits}


# ------------------------------------------------------------------------------------ deploy, watched

class Run:
    """A deploy in its own session; its output read line by line as it comes."""

    def __init__(self, env: Env):
        limit = [a for h in env.hosts for a in ("--limit", h)]
        cmd = [str(ROOT / ".venv/bin/pyinfra"), "-y", *limit, "inventory.py", "deploy.py", "--data", f"env={env.name}"]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "PINNED_STATE_DIR": str(env.state_dir), "PINNED_SANDBOX_PREFIX": PREFIX,
                 "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, pattern: str, after: int = 0, timeout: float = WAIT) -> int:
        """Index of the first line matching `pattern` (from line `after`); fails if the run ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i in range(after, len(self.lines)):
                    if re.search(pattern, self.lines[i]):
                        return i
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"the deploy ended (exit {self.proc.returncode}) before a line "
                                         f"matching {pattern!r}:\n{self.output[-4000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{self.output[-4000:]}")
                self._changed.wait(min(left, 0.5))

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)
        assert self.proc.returncode == -signal.SIGKILL, f"the deploy was not killed: exit {self.proc.returncode}"

    def finish(self, timeout: float) -> int | None:
        """The exit status, or None when it is still running after `timeout` seconds."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(10)
        return self.proc.returncode


def until_on_host(sandbox, host: str, condition: str, timeout: float = WAIT) -> None:
    """Wait, on the host itself (no ssh round trip per look), until the shell `condition` holds."""
    script = f"timeout {timeout} sh -c {shlex.quote(f'until {condition}; do sleep 0.02; done')}"
    proc = sandbox.ssh(host, script, check=False)
    assert proc.returncode == 0, f"{host}: `{condition}` did not hold within {timeout} s"


# ------------------------------------------------------------------------------------------- checks

def post_note(address: str, text: str) -> tuple[int, str | None]:
    data = urllib.parse.urlencode({"text": text}).encode()
    request = urllib.request.Request(f"http://{address}/notes/", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


def whole_release(sandbox, commits, host: str, allowed: set[str]) -> str:
    """The host serves one whole release among `allowed`: page, `current` and nginx's upstream agree."""
    address = sandbox.booted[host].address
    page = http_get(f"http://{address}/")
    found = re.search(r"Release: (\w+)", page.body)
    assert page.status == 200 and found, f"{host}: the page answered {page.status}: {page.body[:300]}"
    tag = found.group(1)
    assert tag in allowed, f"{host}: release {tag} answered, expected one of {sorted(allowed)}"
    current = sandbox.ssh(host, "readlink /srv/agroguia/current").stdout.strip()
    upstream = sandbox.ssh(host, "cat /etc/nginx/pinned/agroguia-upstream.conf").stdout
    sockets = re.findall(r"unix:/run/pinned-agroguia/(\S+)\.sock", upstream)
    names = tags_by_rid(commits)
    assert current.rsplit("/", 1)[-1] in names, f"{host}: current -> {current!r}"
    assert names[current.rsplit("/", 1)[-1]] == tag, f"{host}: current -> {current} but the page is {tag}"
    assert sockets == [rid(commits, tag)], f"{host}: nginx's upstream names {sockets}, the page is {tag}"
    meta = json.loads(sandbox.ssh(host, "cat /srv/agroguia/current/.pinned/release.json").stdout)
    assert meta["status"] == "ready", f"{host}: current release's status is {meta['status']}"
    return tag


def writes_answer_properly(sandbox, host: str) -> int:
    """Right after a fault a write is stored (201) or refused by a freeze (503 + Retry-After): no other answer."""
    status, retry_after = post_note(sandbox.booted[host].address, f"probe-{time.monotonic_ns()}")
    assert status == 201 or (status == 503 and retry_after), \
        f"{host}: a write answered {status} (Retry-After: {retry_after})"
    return status


def freeze_lifted_by_the_lock(sandbox, host: str, db_host: str, timeout: float = 20) -> float:
    """A run killed inside the write freeze leaves its lifting to the lock's holders: they see the connection
    close and run their undo hooks. Within seconds writes are taken again and the account writes the old
    database again. Returns how long it took."""
    started = time.monotonic()
    while True:
        status, retry_after = post_note(sandbox.booted[host].address, f"lifted-{time.monotonic_ns()}")
        if status == 201:
            break
        assert status == 503 and retry_after, f"{host}: a write answered {status}"
        assert time.monotonic() - started < timeout, f"{host}: writes still refused {timeout} s after the kill"
        time.sleep(0.2)
    grants = sandbox.ssh(db_host, "mysql -N -B -r -e \"SHOW GRANTS FOR 'agroguia'@'%s'\"" % (
        "localhost" if db_host == host else sandbox.booted[host].address)).stdout
    assert "ALL PRIVILEGES ON `agroguia\\_v0`" in grants, grants
    assert sandbox.ssh(host, "test -e /run/pinned-agroguia-write-freeze", check=False).returncode != 0
    return time.monotonic() - started


def converges(env: Env, sandbox, web_hosts: list[str]) -> None:
    """The next run converges, nothing is left to do, and the write freeze is lifted everywhere."""
    env.deploy()
    plan = env.pinned("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 0, f"not converged after the next run ({plan.returncode}):\n{plan.stdout}{plan.stderr}"
    for host in web_hosts:
        status, retry_after = post_note(sandbox.booted[host].address, f"after-{time.monotonic_ns()}")
        assert status == 201, f"{host}: after recovery a write answered {status} (Retry-After: {retry_after})"


def serve(env: Env, commits, tag: str) -> None:
    env.write(release=commits[tag]["commit"])
    env.deploy()


# ------------------------------------------------------------------------------------------ one host

@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    # /srv on a tmpfs of its own: the full-disk test fills it, never this machine's disk.
    sandbox.ssh(HOST, f"mountpoint -q /srv || mount -t tmpfs -o size={SRV_SIZE},mode=755 tmpfs /srv")
    env = Env("flt", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.deploy()
    return env


def remove_release(sandbox, host, commits, tag, schema):
    r = rid(commits, tag)
    sandbox.ssh(host, f"systemctl disable --now agroguia@{r}.socket agroguia@{r}.service 2>/dev/null; "
                      f"rm -rf /srv/agroguia/versions/{schema}/{r} /srv/agroguia/versions/{schema}/.{r}.building "
                      f"/srv/agroguia/by-id/{r}", check=False)


# The build is quick (a code-only release is hard links + a few files, its assets linked): to kill the run
# inside it, the host's `tar` (build_extract.sh, in the build's chained command) is held first — a wrapper
# earlier in PATH that marks that it runs, then waits — so the kill lands while the chain runs on the host.
HELD_TAR = """#!/bin/sh
touch /run/pinned-test-tar-held
sleep 300
exec /usr/bin/tar "$@"
"""


def test_kill_during_the_build(env, sandbox, commits):
    serve(env, commits, "A")
    remove_release(sandbox, HOST, commits, "B", 0)
    building = f"/srv/agroguia/versions/0/.{rid(commits, 'B')}.building"
    sandbox.ssh(HOST, f"rm -f /run/pinned-test-tar-held; printf %s {shlex.quote(HELD_TAR)} > /usr/local/bin/tar; "
                      "chmod 0755 /usr/local/bin/tar")
    try:
        env.write(release=commits["B"]["commit"])
        run = Run(env)
        run.wait_line(r"Starting operation: \+ release /srv/agroguia/versions/0/")
        until_on_host(sandbox, HOST, f"test -d {building} && test -e /run/pinned-test-tar-held")
        run.kill()
        # The run's end stopped its build on the host (the lock's undo hook, run_guard.sh): the held step and
        # the rest of the chain are gone, the folder was never renamed into place.
        until_on_host(sandbox, HOST, "! pgrep -f '^sleep 300$' >/dev/null && ! test -e /run/lock/pinned-agroguia.lock",
                      timeout=60)
        assert sandbox.ssh(HOST, f"test -d {building} && ! test -e /srv/agroguia/versions/0/{rid(commits, 'B')}",
                           check=False).returncode == 0
        assert whole_release(sandbox, commits, HOST, {"A"}) == "A"
        writes_answer_properly(sandbox, HOST)
    finally:
        sandbox.ssh(HOST, "rm -f /usr/local/bin/tar /run/pinned-test-tar-held", check=False)
    converges(env, sandbox, [HOST])
    assert whole_release(sandbox, commits, HOST, {"B"}) == "B"


def test_kill_during_the_copy(env, sandbox, commits):
    serve(env, commits, "A")
    # Enough rows that the copy takes seconds: 2^18 notes, made by doubling.
    grow = ("INSERT INTO agroguia_v0.crops_note (text, `release`, created) VALUES ('bulk', 'A', NOW()); "
            + "INSERT INTO agroguia_v0.crops_note (text, `release`, created) "
              "SELECT 'bulk', 'A', created FROM agroguia_v0.crops_note WHERE text = 'bulk'; " * 18)
    sandbox.ssh(HOST, f"mysql -e {shlex.quote(grow)}")
    try:
        env.write(release=commits["C"]["commit"])
        run = Run(env)
        run.wait_line(r"Starting operation: \+ database agroguia_v1")
        until_on_host(sandbox, HOST, "pgrep -f '[m]ysqldump|[m]ariadb-dump' >/dev/null")
        run.kill()
        assert whole_release(sandbox, commits, HOST, {"A"}) == "A"
        writes_answer_properly(sandbox, HOST)
        print(f"\n=== killed in the copy: freeze lifted after {freeze_lifted_by_the_lock(sandbox, HOST, HOST):.1f} s")
    finally:
        sandbox.ssh(HOST, "mysql -e \"DELETE FROM agroguia_v0.crops_note WHERE text = 'bulk'\"", check=False)
    converges(env, sandbox, [HOST])
    assert whole_release(sandbox, commits, HOST, {"C"}) == "C"


def test_kill_during_the_migration(env, sandbox, commits):
    serve(env, commits, "A")
    env.write(release=commits["F"]["commit"])  # its migration sleeps a few seconds
    run = Run(env)
    run.wait_line(r"Starting operation: ~ migrate agroguia_v\d+")
    until_on_host(sandbox, HOST, "pgrep -f '[m]anage.py migrate' >/dev/null")
    run.kill()
    # The killed run's migration goes on on the host, and the deploy lock stays held while it does (run_guard.sh
    # wait): no next run can drop and make its database anew under it.
    held = sandbox.ssh(HOST, "pgrep -f '[m]anage.py migrate' >/dev/null || exit 2; "
                             "while pgrep -f '[m]anage.py migrate' >/dev/null; do "
                             "test -e /run/lock/pinned-agroguia.lock || exit 1; sleep 0.05; done", check=False)
    assert held.returncode == 0, f"the lock ended while the killed run's migration still ran ({held.returncode})"
    assert whole_release(sandbox, commits, HOST, {"A"}) == "A"
    writes_answer_properly(sandbox, HOST)
    freeze_lifted_by_the_lock(sandbox, HOST, HOST)
    converges(env, sandbox, [HOST])
    assert whole_release(sandbox, commits, HOST, {"F"}) == "F"


def test_mariadb_stopped_during_a_deploy(env, sandbox, commits):
    serve(env, commits, "A")
    remove_release(sandbox, HOST, commits, "B", 0)
    env.write(release=commits["B"]["commit"])
    run = Run(env)
    try:
        run.wait_line(r"Beginning operation run")
        sandbox.ssh(HOST, "systemctl stop mariadb")
        code = run.finish(300)
    finally:
        sandbox.ssh(HOST, "systemctl start mariadb", check=False)
    output = run.output
    assert code not in (None, 0), f"the deploy did not fail with MariaDB stopped (exit {code}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    errors = [line for line in output.splitlines() if re.search(rf"\[{HOST}\].*(Error|pinned:)", line)]
    assert errors, f"no error naming {HOST}:\n{output[-4000:]}"
    print(f"\n=== MariaDB stopped: exit {code}; errors:\n" + "\n".join(errors[:6]))
    assert whole_release(sandbox, commits, HOST, {"A", "B"}) in {"A", "B"}
    writes_answer_properly(sandbox, HOST)
    converges(env, sandbox, [HOST])
    assert whole_release(sandbox, commits, HOST, {"B"}) == "B"


def test_disk_full_during_the_build(env, sandbox, commits):
    serve(env, commits, "A")
    remove_release(sandbox, HOST, commits, "B", 0)
    env.write(release=commits["B"]["commit"])
    # Fill /srv (its own tmpfs) to the last byte.
    sandbox.ssh(HOST, "avail=$(df --output=avail -B1 /srv | tail -1); fallocate -l $avail /srv/filler || true; "
                      "dd if=/dev/zero of=/srv/filler2 bs=4k 2>/dev/null || true")
    try:
        failed = env.deploy(check=False)
        output = failed.stdout + failed.stderr
        errors = [line for line in output.splitlines() if re.search(rf"\[{HOST}\].*(Error|pinned:|No space)", line)]
        print(f"\n=== disk full: exit {failed.returncode}; errors:\n" + "\n".join(errors[:8]))
        assert failed.returncode != 0, "the deploy succeeded on a full disk"
        assert "Traceback" not in output, output[-4000:]
        assert errors, f"no error naming {HOST}:\n{output[-4000:]}"
        assert whole_release(sandbox, commits, HOST, {"A"}) == "A"
        leftovers = sandbox.ssh(HOST, f"ls -d /srv/agroguia/versions/0/{rid(commits, 'B')} 2>/dev/null",
                                check=False).stdout.strip()
        assert not leftovers, f"a half-built release is in place: {leftovers}"
        writes_answer_properly(sandbox, HOST)
    finally:
        sandbox.ssh(HOST, "rm -f /srv/filler /srv/filler2", check=False)
    converges(env, sandbox, [HOST])
    assert whole_release(sandbox, commits, HOST, {"B"}) == "B"


# ----------------------------------------------------------------------------- 4 web hosts + 1 db host

@pytest.fixture(scope="module")
def farm(sandbox, commits, tmp_path_factory):
    sandbox.hosts([(h, ("web",)) for h in WEBS] + [(DB, ("db",))])
    env = Env("farm", tmp_path_factory.mktemp("farm"), [*WEBS, DB], release=commits["A"]["commit"])
    env.deploy()
    return env


def settled_release(sandbox, commits, host: str, allowed: set[str], settle: float = 3.0) -> str:
    """whole_release, allowing nginx `settle` seconds to finish a reload the switch already sent (`systemctl
    reload` returns before the new workers take over, so for a moment the page may lag `current`)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            return whole_release(sandbox, commits, host, allowed)
        except AssertionError as exc:
            if time.monotonic() >= deadline:
                raise
            print(f"    {host}: not yet agreeing ({exc}); retrying")
            time.sleep(0.2)


def farm_serves(sandbox, commits, allowed: set[str]) -> dict[str, str]:
    return {h: settled_release(sandbox, commits, h, allowed) for h in WEBS}


def test_logs_show_every_web_host_prefixed_by_it(farm, sandbox):
    """`pinned logs` (no fault here: it reuses this topology) reads journald on every web host at once: each
    line starts with its host's name, and every web host has lines (its release's gunicorn started)."""
    for host in WEBS:  # a request each, so every web unit has an access line of its own
        assert http_get(f"http://{sandbox.booted[host].address}/health/").status == 200
    out = farm.pinned("logs", "--process", "web", "-n", "50").stdout
    lines = out.splitlines()
    assert lines and all(any(line.startswith(f"{h}: ") for h in WEBS) for line in lines), out[-3000:]
    for host in WEBS:
        assert any(line.startswith(f"{host}: ") and "/health/" in line for line in lines), (host, out[-3000:])
    assert not any(line.startswith(f"{DB}: ") for line in lines)


def test_kill_when_some_hosts_have_switched(farm, sandbox, commits):
    """Killed as soon as the first web host reports its switch done. pyinfra runs an operation on every host
    at once (one greenlet per host), so whether others have switched by then is a race: the test reports
    the mix it caught and asserts each host is whole either way."""
    serve(farm, commits, "A")
    farm.write(release=commits["B"]["commit"])
    run = Run(farm)
    start = run.wait_line(r"Starting operation: ~ switch /srv/agroguia/current")
    run.wait_line(r"\[fw\d\]\s+(Success|Changed|No changes)", after=start + 1)
    run.kill()
    served = farm_serves(sandbox, commits, {"A", "B"})
    print(f"\n=== killed after the first switch: {served}")
    for host in WEBS:
        writes_answer_properly(sandbox, host)
    converges(farm, sandbox, WEBS)
    assert set(farm_serves(sandbox, commits, {"B"}).values()) == {"B"}


def test_kill_inside_the_freeze_of_a_schema_change_on_four_hosts(farm, sandbox, commits):
    """A→C on 4 web hosts + 1 db host, killed once the copy has started (every web host refuses writes, the
    db host's guard is on): each host serves A whole, the lock's holders lift the freeze everywhere, and the
    next run takes the farm to C."""
    serve(farm, commits, "A")
    farm.write(release=commits["C"]["commit"])
    run = Run(farm)
    run.wait_line(r"Starting operation: \+ database agroguia_v\d+")
    for host in WEBS:  # the freeze is on everywhere at this point
        assert sandbox.ssh(host, "test -e /run/pinned-agroguia-write-freeze", check=False).returncode == 0, host
    run.kill()
    assert set(farm_serves(sandbox, commits, {"A"}).values()) == {"A"}
    lifted = [freeze_lifted_by_the_lock(sandbox, host, DB) for host in WEBS]
    print(f"\n=== killed inside the freeze on 4+1: lifted after {max(lifted):.1f} s at most")
    converges(farm, sandbox, WEBS)
    assert set(farm_serves(sandbox, commits, {"C"}).values()) == {"C"}
    serve(farm, commits, "A")  # back, for the tests after this one (a switch: C's database stays)


def test_network_cut_during_the_switch(farm, sandbox, commits):
    serve(farm, commits, "B")
    farm.write(release=commits["A"]["commit"])
    cut = sandbox.booted["fw4"]
    run = Run(farm)
    try:
        run.wait_line(r"Starting operation: ~ switch /srv/agroguia/current")
        subprocess.run(["ip", "netns", "exec", cut.netns, "ip", "link", "set", "eth0", "down"], check=True)
        code = run.finish(180)
        if code is None:
            run.kill()
        output = run.output
        print(f"\n=== fw4's network cut during the switch: exit {code}\n"
              + "\n".join(line for line in output.splitlines() if "fw4" in line or "rror" in line)[-2000:])
    finally:
        subprocess.run(["ip", "netns", "exec", cut.netns, "ip", "link", "set", "eth0", "up"], check=False)
    # The cut run's lock holder on fw4 never saw its connection close: it gives up when no heartbeat has come
    # for 45 s (until then a new run is refused there, naming the holder).
    until_on_host(sandbox, "fw4", "! test -e /run/lock/pinned-agroguia.lock", timeout=90)
    served = farm_serves(sandbox, commits, {"A", "B"})
    print(f"    served after the cut: {served}")
    converges(farm, sandbox, WEBS)
    assert set(farm_serves(sandbox, commits, {"A"}).values()) == {"A"}
    # Known limit (README, "Several hosts"): pyinfra does not notice a host whose network went silent in the
    # middle of a command, so the run waits (here it is killed after 180 s); what must hold, holds: every host
    # serves one whole release, the cut host's lock ends by itself, and the next run converges.
    assert code != 0, "the deploy succeeded although fw4 was cut off during the switch"
    assert "Traceback" not in output, output[-4000:]
