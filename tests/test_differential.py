"""Differential test: the simulator against real deploys.

A random sequence of pins (A, B: code only, C: schema change; the seed is printed) is deployed for real to
a sandbox host. Before each deploy the host is observed and the plan computed from it; the simulator
(tests/simulate.py) predicts what the host will be once the plan has run. After the deploy the host is
observed again, and the prediction must equal what observe() reads, field by field (of the fields the
plan decides: see `projection`). So the property tests' simulator is held to what the operations really do.
"""

from __future__ import annotations

import os
import random
import shlex

import pytest

from pinned.engine import request_for
from pinned.operations.facts import OBSERVE_SCRIPT
from pinned.state.check import check_env
from pinned.state.desired import Desired, HostSpec
from pinned.state.observed import HostObserved, parse
from pinned.state.plan import plan
from simulate import apply_plan

pytestmark = pytest.mark.sandbox
HOST = "diff"


def projection(o: HostObserved, app: str) -> dict:
    """What a deploy decides about a host, comparable between the simulator and observe(). Left out, as
    neither decided by the plan nor modelled: times (built_at, history), row estimates, the secrets'
    digest (random values), users' other attributes, units that are neither running nor enabled."""
    def units(u: dict) -> dict:
        return {name: (st.get("active") in ("active", "activating"), bool(st.get("enabled")))
                for name, st in u.items() if name.startswith(f"{app}@")
                and (st.get("active") in ("active", "activating") or st.get("enabled"))}

    return {
        "packages": sorted(o.packages),
        "users": sorted(o.users),
        "paths": {p: (v or {}).get("type") and {k: v.get(k) for k in ("type", "mode", "owner", "group")}
                  for p, v in o.paths.items() if v},
        "files": {p: (f.content, f.mode, f.owner, f.group) for p, f in o.files.items() if f is not None},
        "secrets": o.secrets and {k: o.secrets.get(k) for k in ("mode", "owner", "group", "keys")},
        "current": (o.current, o.current_target),
        "releases": {rid: (r.schema, r.status, r.commit, r.requirements_hash) for rid, r in o.releases.items()},
        "schemas": {n: (s.fingerprint, s.database, s.migrated, s.copied_from, s.last, s.migrations, s.served)
                    for n, s in o.schemas.items()},
        "by_id": dict(o.by_id),
        "venvs": sorted(o.venvs),
        "building": list(o.building),
        "units": units(o.units),
        "mysql_running": o.mysql_running,
        "databases": sorted(o.databases),
        "db_users": sorted(o.db_users),
    }


def test_simulator_predicts_what_real_deploys_leave(sandbox, make_env, commits):
    seed = int(os.environ.get("PINNED_DIFF_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"differential test: PINNED_DIFF_SEED={seed}")
    rng = random.Random(seed)
    sequence = ["A"] + [rng.choice("ABC") for _ in range(5)]
    box = sandbox.host(HOST)
    env = make_env("differential", [HOST], release=commits["A"]["commit"])
    spec = HostSpec(HOST, box.address, ("web", "db"))

    def observe(d: Desired) -> HostObserved:
        command = f"python3 -c {shlex.quote(OBSERVE_SCRIPT)} {shlex.quote(request_for(d))}"
        return parse(sandbox.ssh(HOST, command).stdout)

    for step, tag in enumerate(sequence):
        env.write(release=commits[tag]["commit"])
        checked = check_env(env.name, env.state_dir)
        d = Desired(env=env.name, state=checked.state, release=checked.release, hosts=(spec,))
        before = {HOST: observe(d)}
        the_plan = plan(d, before)
        predicted = apply_plan(the_plan, before, d)[HOST]
        env.deploy()
        real = observe(d)
        kinds = sorted({s.kind for s in the_plan.steps})
        expected, got = projection(predicted, d.state.app), projection(real, d.state.app)
        for field in expected:
            assert got[field] == expected[field], (
                f"seed {seed}, deploy {step + 1} ({' → '.join(sequence[:step + 1])}), plan kinds {kinds}: "
                f"field {field!r} differs from the simulator's prediction")
        assert real.current == d.release.id
        assert plan(d, {HOST: real}).empty
