"""End to end, 4 web hosts + 1 db host: rolling out host by host (`rollout:`).

Release H's health check passes but its main page answers 500. Rolled out under load, the canary switches,
its watch sees the 5xx answers in nginx's log and switches it back to A (still running), and the run stops:
the other three web hosts never serve H and drop no request. Then B rolls out whole: the canary first,
watched, then the others in batches."""

from __future__ import annotations

import re
import time

import pytest

from conftest import Env, failure_summary
from load import Load

pytestmark = pytest.mark.sandbox
WEBS, DB = ["rw1", "rw2", "rw3", "rw4"], "rdb"
ROLLOUT = {"canary": 1, "batch": 2, "watch": "6s", "max_error_rate": "1%"}


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.hosts([(w, ("web",)) for w in WEBS] + [(DB, ("db",))])
    env = Env("roll4", tmp_path_factory.mktemp("state"), [*WEBS, DB], release=commits["A"]["commit"],
              rollout=ROLLOUT)
    env.deploy()
    return env


def rid(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def switches(sandbox, host) -> list[tuple[str, str, str]]:
    """(time, from, to) of each switch in the host's history."""
    out = sandbox.ssh(host, "cat /srv/agroguia/history.log").stdout
    return re.findall(r"^(\S+) switch from=(\S+) to=(\S+)", out, re.M)


def test_a_canary_that_answers_500_switches_back_and_no_other_host_moves(env, sandbox, commits):
    a, h = rid(commits, "A"), rid(commits, "H")
    env.pinned("pin", "H")
    shown = env.pinned("plan").stdout
    assert re.search(r"\+ watch agroguia@\S+\s+\(canary: 6 s", shown), shown
    assert "rollout batch 1 of 2" in shown and "rollout batch 2 of 2" in shown
    before = {w: switches(sandbox, w) for w in WEBS}
    loads = {w: Load(f"http://{sandbox.booted[w].address}/", clients=3, max_duration=600) for w in WEBS}
    for load in loads.values():
        load.__enter__()
    try:
        time.sleep(1)
        deploy = env.deploy(check=False)
        time.sleep(1)
    finally:
        for load in loads.values():
            load.__exit__(None, None, None)
    out = deploy.stdout + deploy.stderr
    # the fault happened: the canary served H and its page answered 500
    assert deploy.returncode != 0, failure_summary(deploy)
    assert loads["rw1"].statuses.get(500, 0) > 0, loads["rw1"].report()
    assert "canary failed" in out and f"switched back to release {a}" in out, failure_summary(deploy)
    assert [(frm, to) for _, frm, to in switches(sandbox, "rw1")[len(before["rw1"]):]] == [(a, h), (h, a)]
    # the canary serves A again; the others never moved and dropped nothing
    for w in WEBS:
        assert sandbox.ssh(w, "readlink /srv/agroguia/current").stdout.strip().endswith(a), w
        assert loads[w].final_release == "A", (w, loads[w].report())
    for w in WEBS[1:]:
        assert switches(sandbox, w) == before[w], w
        load = loads[w]
        assert load.non_2xx == 0 and load.errors == 0 and set(load.per_release) == {"A"}, (w, load.report())
    # the plan says where things stand and offers the rollout again
    again = env.pinned("plan").stdout
    assert f"+ watch agroguia@{h}" in again


def test_a_good_release_rolls_out_canary_first_then_in_batches(env, sandbox, commits):
    b = rid(commits, "B")
    env.pinned("pin", "B")
    deploy = env.deploy()
    out = deploy.stdout + deploy.stderr
    assert f"Starting operation: + watch agroguia@{b}" in out, failure_summary(deploy)
    when = {w: switches(sandbox, w)[-1] for w in WEBS}
    assert all(to == b for _, _, to in when.values()), when
    # rw1 first, then at least its watch later rw2 and rw3 (batch 1), then rw4 (batch 2)
    t = {w: time.mktime(time.strptime(when[w][0], "%Y-%m-%dT%H:%M:%SZ")) for w in WEBS}
    assert t["rw2"] - t["rw1"] >= 6 and t["rw3"] - t["rw1"] >= 6, when
    assert max(t["rw2"], t["rw3"]) <= t["rw4"], when
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
