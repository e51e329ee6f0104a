"""End to end: instant rollback. After a switch the release that served stays warm (`keep_warm`): its socket
and gunicorn keep running, so rolling back to it within the window starts nothing — the same gunicorn answers
(same main PID), the plan says so, and no request fails under load. A timer on the host stops it when the
window ends, never while it is current; retention keeps it while it is warm; `keep_warm: 0` stops the old
release right after the switch, as before. Prints the memory a warm release costs (its processes' RSS).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import Env, http_get
from load import Load

pytestmark = pytest.mark.sandbox
HOST = "kw"
CLIENTS = 20
SETTLE = 1.5  # seconds of load before and after the rollback


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("kw", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"], keep_releases=1)
    env.deploy()
    return env


def rid(commits, tag: str) -> str:
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def unit_state(sandbox, unit: str) -> str:
    return sandbox.ssh(HOST, f"systemctl is-active {unit}", check=False).stdout.strip()


def main_pid(sandbox, release: str) -> int:
    return int(sandbox.ssh(HOST, f"systemctl show -p MainPID --value agroguia@{release}.service").stdout.strip())


def started_at(sandbox, release: str) -> str:
    return sandbox.ssh(HOST, f"systemctl show -p ActiveEnterTimestampMonotonic --value "
                             f"agroguia@{release}.service").stdout.strip()


def rss_kib(sandbox, release: str) -> int:
    """Resident memory of the release's gunicorn: its master and its workers (the master's children)."""
    pid = main_pid(sandbox, release)
    out = sandbox.ssh(HOST, f"ps -o rss= -p {pid} --ppid {pid}").stdout
    return sum(int(x) for x in out.split())


def wait_for(condition, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.25)
    return time.monotonic() - began


def serving(sandbox) -> str | None:
    page = http_get(f"http://{sandbox.booted[HOST].address}/")
    found = re.search(r"Release: (\w+)", page.body)
    return found.group(1) if page.status == 200 and found else None


def test_rollback_within_the_window_starts_nothing(env, sandbox, commits):
    a, b = rid(commits, "A"), rid(commits, "B")
    pid_a, since_a = main_pid(sandbox, a), started_at(sandbox, a)
    env.write(release=commits["B"]["commit"])
    plan_b = env.pinned("plan").stdout
    assert f"~ warm agroguia@{a}  (kept warm for 10m" in plan_b, plan_b
    assert "- prune" not in plan_b and "- stop" not in plan_b, plan_b  # keep_releases 1, yet A stays: warm
    env.deploy()
    assert serving(sandbox) == "B"
    assert unit_state(sandbox, f"agroguia@{a}.service") == "active" and main_pid(sandbox, a) == pid_a
    assert unit_state(sandbox, f"pinned-warm-agroguia@{a}.timer") == "active"
    rows = json.loads(env.pinned("releases", "--json").stdout)["hosts"][HOST]
    assert {r["id"]: r["warm"] for r in rows} == {a: True, b: False}
    text = env.pinned("releases").stdout
    assert re.search(rf"{a} .*warm \(until \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", text), text
    shown = env.pinned("status").stdout
    assert re.search(rf"warm: {a} \(kept running for an instant rollback, until \d{{4}}-", shown), shown
    print(f"\n=== RSS of warm release A's gunicorn (master + 2 workers): {rss_kib(sandbox, a) / 1024:.1f} MiB")

    # Back to A inside the window, under load: the plan says warm, nothing starts, nothing fails.
    env.write(release=commits["A"]["commit"])
    plan_a = env.pinned("plan").stdout
    assert f"+ app agroguia@{a}  (warm: no start needed)" in plan_a, plan_a
    assert f"~ warm agroguia@{b}" in plan_a, plan_a
    with Load(f"http://{sandbox.booted[HOST].address}/", clients=CLIENTS) as load:
        time.sleep(SETTLE)
        began = time.monotonic()
        deploy = env.deploy()
        took = time.monotonic() - began
        time.sleep(SETTLE)
    print(f"=== rollback B→A within the window: deploy {took:.2f} s\n{load.report()}")
    assert load.failures == 0, load.report()
    assert load.per_release.get("B", 0) > 0 and load.final_release == "A", load.report()
    assert main_pid(sandbox, a) == pid_a, "the warm release was restarted"
    assert started_at(sandbox, a) == since_a, "the warm release's service was started again"
    assert deploy.returncode == 0
    assert unit_state(sandbox, f"pinned-warm-agroguia@{a}.timer") != "active"  # cancelled: A is current
    assert unit_state(sandbox, f"pinned-warm-agroguia@{b}.timer") == "active"
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0  # converged: B stays warm

    # The end of a window never stops the current release: A's own stop service, run now, does nothing.
    sandbox.ssh(HOST, f"systemctl start pinned-warm-agroguia@{a}.service")
    assert unit_state(sandbox, f"agroguia@{a}.service") == "active" and main_pid(sandbox, a) == pid_a
    assert serving(sandbox) == "A"


def test_window_ends_then_the_old_release_stops_and_may_be_pruned(env, sandbox, commits):
    a, b = rid(commits, "A"), rid(commits, "B")
    assert serving(sandbox) == "A"
    env.write(release=commits["B"]["commit"], keep_warm="3s")
    env.deploy()
    assert serving(sandbox) == "B"
    waited = wait_for(lambda: sandbox.ssh(HOST, f"systemctl is-active agroguia@{a}.service agroguia@{a}.socket",
                                          check=False).stdout.split() == ["inactive", "inactive"], 30,
                      "the warm release A (socket and service) stopped by its timer")
    print(f"\n=== A stopped {waited:.1f} s after the deploy returned (keep_warm 3s)")
    assert unit_state(sandbox, f"agroguia@{b}.service") == "active" and serving(sandbox) == "B"
    rows = json.loads(env.pinned("releases", "--json").stdout)["hosts"][HOST]
    assert {r["id"]: r["warm"] for r in rows} == {a: False, b: False}
    plan = env.pinned("plan").stdout  # no longer warm: retention (keep_releases 1) may take it now
    assert f"- prune /srv/agroguia/versions/0/{a}" in plan and "~ warm" not in plan, plan


def test_keep_warm_0_stops_the_old_release_right_after_the_switch(env, sandbox, commits):
    a, b = rid(commits, "A"), rid(commits, "B")
    env.write(release=commits["A"]["commit"], keep_warm="0")
    plan = env.pinned("plan").stdout
    assert f"- stop agroguia@{b}  (no longer current)" in plan and "~ warm" not in plan, plan
    assert f"+ app agroguia@{a}  (release on disk is not running)" in plan, plan
    env.deploy()
    assert serving(sandbox) == "A"
    assert unit_state(sandbox, f"agroguia@{b}.service") != "active"
    assert unit_state(sandbox, f"pinned-warm-agroguia@{b}.timer") != "active"
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
