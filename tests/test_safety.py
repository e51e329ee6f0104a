"""End to end: what a failure leaves behind. A health gate that refuses a broken release, a deploy lock
that refuses a second deploy and dies with its run (done, failed, declined, killed), `pinned unlock` for a
hung one, the lock's undo hook, retention that never prunes what must stay, and deploys killed at random
moments that leave a whole release serving and converge on the next run."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import PREFIX, ROOT, Env, http_get

pytestmark = pytest.mark.sandbox
HOST = "safe"
LOCK = "/run/lock/pinned-agroguia.lock"


def rid(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("safe", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.deploy()
    return env


def page(sandbox):
    return http_get(f"http://{sandbox.booted[HOST].address}/")


def test_health_gate_refuses_a_broken_release(env, sandbox, commits):
    env.write(release=commits["D"]["commit"])  # /health/ answers 500
    failed = env.deploy(check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert lock_text(sandbox) is None  # the failed run's lock ended with it: the next deploy runs at once
    assert re.search(r"health check failed: http://\S+/health/ on release \S+ answered 500", output)
    assert "current is unchanged" in output
    assert "Release: A" in page(sandbox).body
    assert sandbox.ssh(HOST, "readlink /srv/agroguia/current").stdout.strip() == f"versions/0/{rid(commits, 'A')}"
    releases = json.loads(env.pinned("releases", "--json").stdout)["hosts"][HOST]
    assert {r["id"]: r["status"] for r in releases}[rid(commits, "D")] == "failed"
    units = sandbox.ssh(HOST, f"systemctl is-active agroguia@{rid(commits, 'D')}.service", check=False).stdout
    assert units.strip() != "active"
    # The next run with a good pin converges; D's database copy never went live, so C gets a fresh one.
    env.write(release=commits["C"]["commit"])
    plan = env.pinned("plan").stdout
    assert "copied for a deploy that never went live" in plan
    env.deploy()
    assert "Release: C" in page(sandbox).body
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
    env.write(release=commits["A"]["commit"])
    env.deploy()


def lock_text(sandbox) -> str | None:
    """The lock file on the host, or None when there is none."""
    out = sandbox.ssh(HOST, f"cat {LOCK}", check=False)
    return out.stdout if out.returncode == 0 else None


def start_deploy(env, yes: bool = True):
    cmd = [str(ROOT / ".venv/bin/pyinfra"), *(["-y"] if yes else []), "--limit", HOST, "inventory.py",
           "deploy.py", "--data", f"env={env.name}"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PINNED_STATE_DIR": str(env.state_dir),
                                                 "PINNED_SANDBOX_PREFIX": PREFIX},
                            stdin=subprocess.DEVNULL if yes else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_until_it_holds_the_lock(sandbox, proc) -> dict:
    """Poll the host's lock file until it names this run (its pid): the holder line, parsed."""
    deadline = time.time() + 90
    while time.time() < deadline:
        held = lock_text(sandbox)
        if held and json.loads(held).get("pid") == proc.pid:
            return json.loads(held)
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    raise AssertionError("the run never took the deploy lock")


def wait_for_no_lock(sandbox, seconds: float = 10) -> float:
    """Seconds until the host has no lock file (fails after `seconds`)."""
    started = time.monotonic()
    while lock_text(sandbox) is not None:
        assert time.monotonic() - started < seconds, f"the lock is still held: {lock_text(sandbox)}"
        time.sleep(0.05)
    return time.monotonic() - started


def kill_run(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def remove_release(sandbox, commits, tag):
    r = rid(commits, tag)
    sandbox.ssh(HOST, f"systemctl disable --now agroguia@{r}.socket agroguia@{r}.service 2>/dev/null; "
                      f"rm -rf /srv/agroguia/versions/0/{r} /srv/agroguia/versions/0/.{r}.building "
                      f"/srv/agroguia/by-id/{r}", check=False)


def test_two_deploys_at_once_one_is_refused(env, sandbox, commits):
    remove_release(sandbox, commits, "B")
    env.write(release=commits["B"]["commit"])
    first, second = start_deploy(env), start_deploy(env)
    out1, out2 = first.communicate(timeout=300)[0], second.communicate(timeout=300)[0]
    codes = sorted([first.returncode, second.returncode])
    assert codes[0] == 0 and codes[1] != 0, (out1[-2000:], out2[-2000:])
    refused, winner = (out1, second) if first.returncode else (out2, first)
    assert re.search(rf"refused: safe: agroguia is being deployed by \S+@\S+ \(pid {winner.pid}, since \S+Z\)",
                     refused), refused[-2000:]
    assert lock_text(sandbox) is None
    assert "Release: B" in page(sandbox).body


def test_a_killed_deploy_releases_its_lock_at_once(env, sandbox, commits):
    remove_release(sandbox, commits, "B")
    env.write(release=commits["B"]["commit"])
    proc = start_deploy(env)
    held = wait_until_it_holds_the_lock(sandbox, proc)
    assert re.fullmatch(r"\S+@\S+", held["by"]) and held["holder_pid"] > 0 and held["since"].endswith("Z")
    # A watcher on the host prints when the lock file goes (the sandbox host shares this machine's clock).
    watcher = sandbox.popen_ssh(HOST, f"while [ -e {LOCK} ]; do sleep 0.01; done; date +%s.%N")
    time.sleep(0.5)
    killed_at = time.time()
    kill_run(proc)  # SIGKILL: no handler of the run runs, only its connection closes
    wait_for_no_lock(sandbox, seconds=5)
    released = float(watcher.communicate(timeout=10)[0]) - killed_at
    print(f"killed run: lock file removed on the host {released:.3f} s after SIGKILL")
    assert released < 5
    after = env.deploy()
    output = after.stdout + after.stderr
    assert "took over" not in output and "refused" not in output
    assert "Release: B" in page(sandbox).body
    assert lock_text(sandbox) is None


def test_a_declined_confirmation_leaves_no_lock(env, sandbox, commits):
    env.write(release=commits["A"]["commit"])  # a rollback: the plan has changes, so the run asks
    proc = start_deploy(env, yes=False)
    out = proc.communicate(input="n\n", timeout=300)[0]
    assert "Press enter to execute" in out and "Unexpected user input: n" in out, out[-3000:]
    assert lock_text(sandbox) is None
    assert "Release: B" in page(sandbox).body  # nothing ran
    after = env.deploy()
    assert "refused" not in after.stdout + after.stderr
    assert "Release: A" in page(sandbox).body


def test_unlock_ends_the_lock_of_a_hung_run(env, sandbox, commits):
    remove_release(sandbox, commits, "B")
    env.write(release=commits["B"]["commit"])
    proc = start_deploy(env)
    held = wait_until_it_holds_the_lock(sandbox, proc)
    os.killpg(proc.pid, signal.SIGSTOP)  # hung: still connected, no heartbeat
    try:
        unlocked = env.pinned("unlock").stdout
        assert re.search(rf"{HOST}: released the deploy lock of {re.escape(held['by'])} \(pid {proc.pid}, since "
                         rf"{held['since']}\): ended its holder process {held['holder_pid']}", unlocked), unlocked
        assert lock_text(sandbox) is None
        assert env.pinned("unlock").stdout.strip() == "no deploy lock is held"
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    out = proc.communicate(timeout=300)[0]  # resumed, it finds its lock gone and stops before changing anything
    assert proc.returncode != 0 and "no longer holds the deploy lock" in out, out[-3000:]
    assert "Release: A" in page(sandbox).body
    env.deploy()
    assert "Release: B" in page(sandbox).body


def test_the_undo_hook_runs_when_the_run_dies(env, sandbox, commits):
    sandbox.ssh(HOST, "rm -f /tmp/undo-ran")
    env.write(release=commits["A"]["commit"])
    proc = start_deploy(env)
    wait_until_it_holds_the_lock(sandbox, proc)
    sandbox.ssh(HOST, f"echo 'echo undone > /tmp/undo-ran' > {LOCK}.undo")  # as a step would write it
    kill_run(proc)
    wait_for_no_lock(sandbox, seconds=5)
    assert sandbox.ssh(HOST, "cat /tmp/undo-ran").stdout == "undone\n"
    assert sandbox.ssh(HOST, f"test -e {LOCK}.undo", check=False).returncode != 0
    env.deploy()
    assert "Release: A" in page(sandbox).body


def test_deploys_killed_at_random_moments_never_leave_half_a_release(env, sandbox, commits):
    rng = random.Random(20261126)
    texts = {"Release: A", "Release: B"}
    for attempt in range(10):
        env.write(release=commits["A"]["commit"])
        env.deploy()
        remove_release(sandbox, commits, "B")
        env.write(release=commits["B"]["commit"])
        proc = start_deploy(env)
        time.sleep(rng.uniform(0.5, 7.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        served = page(sandbox)
        assert served.status == 200 and any(t in served.body for t in texts), (attempt, served.status)
        current = sandbox.ssh(HOST, "readlink -f /srv/agroguia/current").stdout.strip()
        meta = json.loads(sandbox.ssh(HOST, f"cat {current}/.pinned/release.json").stdout)
        assert meta["status"] == "ready" and not current.endswith(".building")
        env.deploy()  # the next run converges
        assert "Release: B" in page(sandbox).body
        assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_retention_keeps_current_pinned_and_every_last(sandbox, commits, tmp_path):
    """keep_releases 2 across 6 deploys and a rollback, with releases made on top of the example repo."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT / ".build/agroguia"), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", commits["C"]["commit"]], check=True)  # schema 1
    extra = []
    for n in range(1, 5):
        template = repo / "crops/templates/crops/index.html"
        template.write_text(re.sub(r"Release: \w+", f"Release: R{n}", template.read_text()))
        stamp = f"2026-12-0{n}T10:00:00+00:00"
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit",
                        "-qam", f"R{n}"], check=True, env={**os.environ, "GIT_AUTHOR_DATE": stamp,
                                                            "GIT_COMMITTER_DATE": stamp})
        extra.append(subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip())
    sandbox.host("keep")
    env = Env("keep", tmp_path, ["keep"], repository=str(repo), keep_releases=2, release=commits["A"]["commit"])
    sequence = [commits["A"]["commit"], commits["B"]["commit"], *extra]  # 6 deploys, schema 0 then 1
    pruned_lines = []
    for commit in sequence:
        env.write(release=commit)
        pruned_lines += re.findall(r"- prune (\S+)", env.pinned("plan").stdout)
        env.deploy()
    env.write(release=extra[-2])  # a rollback to a release still on disk
    rollback_plan = env.pinned("plan").stdout
    env.deploy()
    assert "Release: R3" in http_get(f"http://{sandbox.booted['keep'].address}/").body
    listing = json.loads(env.pinned("releases", "--json").stdout)["hosts"]["keep"]
    on_disk = {r["id"] for r in listing}
    lasts = {r["id"] for r in listing if r["last"]}
    current = {r["id"] for r in listing if r["current"]}
    assert current <= on_disk and lasts <= on_disk and len(lasts) == 2  # schema 0 and schema 1
    assert all(sum(1 for r in listing if r["schema"] == n) <= 2 for n in (0, 1))
    assert pruned_lines, "the plans listed no prune"
    gone = {p.rsplit("/", 1)[1] for p in pruned_lines if "/versions/" in p}
    assert gone and not gone & on_disk  # what the plans listed was removed
    assert "- prune" not in rollback_plan or all(x.rsplit("/", 1)[1] < min(current) for x in
                                                  re.findall(r"- prune (\S+/versions/\S+)", rollback_plan))
    sandbox_down = sandbox.ssh("keep", "ls /srv/agroguia/venvs").stdout.split()
    assert len(sandbox_down) == 1  # one requirements hash in use: one virtualenv
