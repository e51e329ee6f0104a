"""End to end: writes under load across a schema change, and back.

10 clients POST notes (each with a unique text), GET the page and GET a page that writes its session, while
pinned deploys A→C (a schema change: `agroguia_v0` copied to `agroguia_v1`, migrated, switched). No write the
site acknowledged may be lost: every 201's text must be in the database that ends up current. A write may be
refused only with 503 and a Retry-After header (the write freeze); no other 5xx; every read answered 2xx by
A or C. Then C→A (a rollback across the schema change, nothing copied): writes keep working, no refusal, and
each acknowledged write is in its release's database (A's in v0). The worst read latency and the freeze
(as clients saw it, and as the deploy states it) are printed: `pytest -s` shows them.
"""

from __future__ import annotations

import re
import time

import pytest

from conftest import Env, http_get
from load import WriteLoad

pytestmark = pytest.mark.sandbox
HOST = "wul"
CLIENTS = 10
SETTLE = 2.0
DATABASE = {"A": "agroguia_v0", "C": "agroguia_v1"}


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("wul", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.deploy()
    return env


def base_url(sandbox) -> str:
    return f"http://{sandbox.booted[HOST].address}"


def serving(sandbox) -> str | None:
    page = http_get(base_url(sandbox) + "/")
    found = re.search(r"Release: (\w+)", page.body)
    return found.group(1) if page.status == 200 and found else None


def texts_in(sandbox, database: str) -> set[str]:
    out = sandbox.ssh(HOST, f"mysql -N -B -e 'SELECT text FROM {database}.crops_note'").stdout
    return set(out.splitlines())


def deploy_under_writes(env, sandbox, commits, old: str, new: str, tag: str):
    if serving(sandbox) != old:
        env.write(release=commits[old]["commit"])
        env.deploy()
    assert serving(sandbox) == old
    env.write(release=commits[new]["commit"])
    with WriteLoad(base_url(sandbox), clients=CLIENTS, max_duration=300, tag=tag) as load:
        time.sleep(SETTLE)
        began = time.monotonic()
        deploy = env.deploy(check=False)
        took = time.monotonic() - began
        time.sleep(SETTLE)
    output = deploy.stdout + deploy.stderr
    stated = [line.strip() for line in output.splitlines() if line.strip().startswith("pinned: write freeze lasted")]
    freeze, refusals = load.longest_refusal
    print(f"\n=== {old}→{new} under writes: deploy {took:.1f}s (exit {deploy.returncode}); "
          f"worst GET latency {load.worst_read_latency * 1000:.0f} ms; freeze seen by clients {freeze:.2f}s "
          f"({refusals} refusals); stated: {stated or 'none'}")
    print(load.report())
    if deploy.returncode != 0:
        print("--- deploy output (tail)\n" + deploy.stdout[-5000:] + "\n" + deploy.stderr[-3000:])
    return deploy, load


def check_answers(load, old: str, new: str) -> None:
    assert not load.expired, "the load ended by its max duration before the deploy finished"
    assert load.acknowledged_writes > 0, "no write was acknowledged during the whole run"
    assert not load.other_5xx, f"5xx other than 503+Retry-After: {[(s.kind, s.status) for s in load.other_5xx][:10]}"
    assert not load.write_failures, \
        f"writes neither stored nor refused: {[(s.kind, s.status, s.error) for s in load.write_failures][:10]}"
    assert not load.read_failures, \
        f"{len(load.read_failures)} GETs failed: {[(s.status, s.error) for s in load.read_failures][:10]}"
    assert set(load.releases_of("read")) <= {old, new}, f"reads answered by {load.releases_of('read')}"
    assert set(load.releases_of("write")) <= {old, new}, f"writes stored by {load.releases_of('write')}"


def test_schema_change_under_writes_loses_no_acknowledged_write(env, sandbox, commits):
    deploy, load = deploy_under_writes(env, sandbox, commits, "A", "C", "ac")
    assert deploy.returncode == 0, "the deploy A→C failed under writes (see its output above)"
    check_answers(load, "A", "C")
    assert serving(sandbox) == "C"
    assert load.releases_of("read").get("C"), "C never answered: the switch did not happen under load"
    assert load.releases_of("write").get("C"), "no write was stored by C after the switch"
    stored = texts_in(sandbox, DATABASE["C"])
    lost = [t for t in load.acknowledged_texts if t not in stored]
    assert not lost, (f"{len(lost)} of {load.acknowledged_writes} acknowledged writes are not in "
                      f"{DATABASE['C']}, the current database: e.g. {lost[:5]}")
    # After the switch the freeze is lifted: a write is stored again.
    after = WriteLoad(base_url(sandbox), clients=1, max_rounds=1, tag="after-ac")
    with after:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(after.samples) < 3:
            time.sleep(0.05)
    assert after.acknowledged_writes == 1, after.report()


def test_rollback_across_the_schema_change_keeps_writing(env, sandbox, commits):
    deploy, load = deploy_under_writes(env, sandbox, commits, "C", "A", "ca")
    assert deploy.returncode == 0, "the rollback C→A failed under writes (see its output above)"
    check_answers(load, "C", "A")
    assert serving(sandbox) == "A"
    assert load.refused_writes == 0, \
        f"{load.refused_writes} writes refused during a rollback that copies nothing (no freeze needed)"
    assert load.releases_of("write").get("A"), "no write was stored by A after the rollback"
    stored = {release: texts_in(sandbox, database) for release, database in DATABASE.items()}
    by_release = {s.text: s.release for s in load.of("write") if s.status == 201}
    lost = [(t, r) for t, r in by_release.items() if t not in stored.get(r, set())]
    assert not lost, f"{len(lost)} acknowledged writes are not in their release's database: e.g. {lost[:5]}"
