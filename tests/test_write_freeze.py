"""End to end: a schema change's write freeze on a real host. While the database is copied and migrated,
writes get 503 + Retry-After from nginx and the app's account may only read the old database; reads go
on; afterwards both are lifted. A migration that fails inside the freeze lifts it at once."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import PREFIX, ROOT, http_get

pytestmark = pytest.mark.sandbox
HOST = "frz"


def post(address: str):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://{address}/", data=b"x=1", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


def start_deploy(env):
    cmd = [str(ROOT / ".venv/bin/pyinfra"), "-y", "--limit", HOST, "inventory.py", "deploy.py",
           "--data", f"env={env.name}"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PINNED_STATE_DIR": str(env.state_dir),
                                                 "PINNED_SANDBOX_PREFIX": PREFIX},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def grants(sandbox) -> str:
    out = sandbox.ssh(HOST, "mysql -N -B -r -e \"SHOW GRANTS FOR 'agroguia'@'localhost'\"").stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith("GRANT USAGE"))  # no hash shown


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    from conftest import Env

    sandbox.host(HOST)
    env = Env("frz", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"],
              site={"health_url": "/health/", "frozen_message": "Paused for an update <b>now</b>"})
    env.deploy()
    return env


def test_writes_are_refused_during_the_copy_and_accepted_after(env, sandbox, commits):
    address = sandbox.booted[HOST].address
    assert post(address)[0] != 503 and "`agroguia\\_v0`" in grants(sandbox)  # by name, not a pattern
    env.write(release=commits["C"]["commit"])
    plan = env.pinned("plan").stdout
    assert re.search(r"\+ write-freeze /etc/nginx/pinned/agroguia-freeze.conf", plan)
    assert "write freeze: writes are refused (503 + Retry-After) for ~" in plan
    proc = start_deploy(env)
    seen, lines = None, []
    for line in proc.stdout:  # the copy starts once both freezes are on: look then, while it runs
        lines.append(line)
        if "Starting operation: + database agroguia_v1" in line:
            marker = sandbox.ssh(HOST, "test -e /run/pinned-agroguia-write-freeze", check=False).returncode == 0
            status, headers, body = post(address)
            page = http_get(f"http://{address}/")
            seen = (marker, status, headers.get("Retry-After"), body, page.status, page.body, grants(sandbox))
            break
    out = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    assert seen is not None, "the copy never started:\n" + out[-4000:]
    marker, status, retry_after, body, get_status, get_body, frozen_grants = seen
    assert marker
    assert status == 503 and retry_after and int(retry_after) >= 5
    assert "Paused for an update &lt;b&gt;now&lt;/b&gt;" in body  # the state file's message, escaped
    assert get_status == 200 and "Release: A" in get_body  # reads go on, from the old release
    assert "GRANT SELECT ON `agroguia\\_v0`" in frozen_grants
    assert "ALL PRIVILEGES ON `agroguia\\_v0`" not in frozen_grants
    assert re.search(r"pinned: write freeze lasted \d+\.\d s", out)
    # Lifted: writes reach the app again, the account has ALL on both schema databases, no hook is left.
    assert post(address)[0] != 503 and "Release: C" in http_get(f"http://{address}/").body
    after = grants(sandbox)
    assert "ALL PRIVILEGES ON `agroguia\\_v0`" in after and "ALL PRIVILEGES ON `agroguia\\_v1`" in after
    assert sandbox.ssh(HOST, "ls /run/lock/pinned-agroguia.lock.undo.d/ 2>/dev/null | wc -l").stdout.strip() == "0"
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_a_failed_migration_inside_the_freeze_lifts_it(env, sandbox, commits):
    address = sandbox.booted[HOST].address
    env.write(release=commits["A"]["commit"])
    env.deploy()
    env.write(release=commits["E"]["commit"])  # its migration raises
    failed = env.deploy(check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "migrat" in out
    assert "failed during the write freeze: lifted on every host" in out  # the freeze really was on
    assert post(address)[0] != 503 and "Release: A" in http_get(f"http://{address}/").body
    assert "ALL PRIVILEGES ON `agroguia\\_v0`" in grants(sandbox)
    assert sandbox.ssh(HOST, "test -e /run/pinned-agroguia-write-freeze", check=False).returncode != 0
    env.write(release=commits["A"]["commit"])
    env.deploy()
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_in_place_migrates_the_live_database_with_no_copy_and_no_freeze(sandbox, commits, tmp_path):
    from conftest import Env

    host = "inplace"
    sandbox.host(host)
    env = Env("inplace", tmp_path, [host], release=commits["A"]["commit"], schema_change="in_place")
    env.deploy()
    env.write(release=commits["C"]["commit"])
    plan = env.pinned("plan").stdout
    assert "~ migrate agroguia_v0" in plan and "+ database" not in plan and "write-freeze" not in plan
    assert "rolling back across this change keeps the new schema" in plan
    out = env.deploy()
    assert "write freeze lasted" not in out.stdout + out.stderr and "+ write-freeze" not in out.stdout
    address = sandbox.booted[host].address
    assert "Release: C" in http_get(f"http://{address}/").body
    databases = sandbox.ssh(host, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    assert "agroguia_v0" in databases and "agroguia_v1" not in databases  # migrated where it was, no copy
    columns = sandbox.ssh(host, "mysql -N -B -e 'SHOW COLUMNS FROM agroguia_v0.crops_crop'").stdout
    assert "variety" in columns
    env.write(release=commits["A"]["commit"])  # back: a switch; the column stays
    back = env.pinned("plan").stdout
    assert "changed in place" in back and "+ database" not in back
    env.deploy()
    assert "Release: A" in http_get(f"http://{address}/").body
    assert "variety" in sandbox.ssh(host, "mysql -N -B -e 'SHOW COLUMNS FROM agroguia_v0.crops_crop'").stdout
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
