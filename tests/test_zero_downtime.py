"""End to end: switching releases under load drops no request.

20 clients GET the site's `/` (a page that reads MariaDB) through nginx while pinned deploys: a code-only
release (A→B), a rollback to a release on disk (B→A), a schema-changing release (A→C). Every request must
be answered 2xx, with no connection refused/reset/timed out, both releases must have answered during the
run (the switch really happened under load) and the new one must be serving at the end. Latency is
reported (the target: worst < 1 s), not asserted: `pytest -s` shows the figures.
"""

from __future__ import annotations

import re
import time

import pytest

from conftest import Env, http_get
from load import Load

pytestmark = pytest.mark.sandbox
HOST = "zdt"
CLIENTS = 20
SETTLE = 2.0   # seconds of load before the deploy and after it returns


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.host(HOST)
    env = Env("zdt", tmp_path_factory.mktemp("state"), [HOST], release=commits["A"]["commit"])
    env.deploy()
    return env


def site_url(sandbox) -> str:
    return f"http://{sandbox.booted[HOST].address}/"


def serving(sandbox) -> str | None:
    page = http_get(site_url(sandbox))
    found = re.search(r"Release: (\w+)", page.body)
    return found.group(1) if page.status == 200 and found else None


def ensure_serving(env, sandbox, commits, tag: str) -> None:
    """The precondition of a switch, when an earlier test left the host elsewhere."""
    if serving(sandbox) != tag:
        env.write(release=commits[tag]["commit"])
        env.deploy()
    assert serving(sandbox) == tag


def switch_under_load(env, sandbox, commits, old: str, new: str, label: str) -> Load:
    ensure_serving(env, sandbox, commits, old)
    env.write(release=commits[new]["commit"])
    with Load(site_url(sandbox), clients=CLIENTS) as load:
        time.sleep(SETTLE)
        began = time.monotonic()
        deploy = env.deploy(check=False)
        took = time.monotonic() - began
        time.sleep(SETTLE)
    print(f"\n=== {label}: {old}→{new}, deploy {took:.1f}s (exit {deploy.returncode}), "
          f"{old}/{new} answers overlap {load.overlap(old, new):.2f}s")
    print(load.report())
    if deploy.returncode != 0 or load.failures or new not in load.per_release:
        print("--- deploy output (tail)\n" + deploy.stdout[-4000:] + "\n" + deploy.stderr[-2000:])
    assert deploy.returncode == 0, f"deploy {old}→{new} failed"
    assert not load.expired, "the load ended by its max duration before the deploy finished"
    assert load.non_2xx == 0, f"{load.non_2xx} non-2xx answers during {old}→{new}: {load.statuses}"
    assert load.errors == 0, f"{load.errors} connection errors during {old}→{new}: {load.error_kinds}"
    assert load.per_release.get(old, 0) > 0 and load.per_release.get(new, 0) > 0, \
        f"the switch {old}→{new} did not happen under load: {load.per_release}"
    assert load.final_release == new, f"{load.final_release} answered last, not {new}"
    assert serving(sandbox) == new
    return load


def test_code_only_deploy_under_load(env, sandbox, commits):
    switch_under_load(env, sandbox, commits, "A", "B", "code-only deploy")


def test_rollback_under_load(env, sandbox, commits):
    ensure_serving(env, sandbox, commits, "B")   # B current, A on disk
    switch_under_load(env, sandbox, commits, "B", "A", "rollback")


def test_schema_change_deploy_under_load(env, sandbox, commits):
    switch_under_load(env, sandbox, commits, "A", "C", "schema-changing deploy")
