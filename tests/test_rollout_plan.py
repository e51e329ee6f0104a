"""Rolling out host by host, planned (no hosts): the canary switches and is watched, the others follow in
batches, a schema change is refused, and hosts serving different releases are said."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan import desired

from pinned.state import changes as c
from pinned.state.desired import HostSpec
from pinned.state.model import Rollout, StateFileError, parse_state
from pinned.state.observed import HostObserved
from pinned.state.plan import BLOCKED, PHASES, plan
from simulate import apply_plan

WEBS = tuple(HostSpec(f"w{i}", f"10.0.0.{10 + i}", ("web",)) for i in range(1, 5))
DB = HostSpec("db", "10.0.0.20", ("db",))


def on_hosts(tag, webs=WEBS, **state):
    return replace(desired(tag, **state), hosts=(*webs, DB))


def serving(tag, webs=WEBS):
    """The hosts converged to release `tag` (deployed without a rollout)."""
    d = on_hosts(tag, webs)
    return apply_plan(plan(d, {h.name: HostObserved() for h in d.hosts}), {h.name: HostObserved() for h in d.hosts}, d)


ROLLOUT = {"canary": 1, "batch": 2, "watch": "5s", "max_error_rate": "1%"}


def test_canary_first_then_batches():
    p = plan(on_hosts("B", rollout=ROLLOUT), serving("A"))
    assert p.status != BLOCKED
    switches = [(s.host, s.phase, s.wave) for s in p.steps if s.kind == "switch"]
    assert switches == [("w1", "switch", 0), ("w2", "rollout", 1), ("w3", "rollout", 1), ("w4", "rollout", 2)]
    watches = [s for s in p.steps if s.kind == "watch"]
    assert [s.host for s in watches] == ["w1"] and watches[0].phase == "watch"
    w = watches[0].change
    assert (w.seconds, w.max_error_rate, w.old_release, w.new_release) == (5, "1", desired("A").release.id,
                                                                          desired("B").release.id)
    assert w.old_upstream and "unix:" in w.old_upstream  # what a failed watch puts back
    assert PHASES.index("switch") < PHASES.index("watch") < PHASES.index("rollout") < PHASES.index("cleanup")
    # old releases stop only after every switch
    assert all(s.phase == "cleanup" for s in p.steps if s.kind == "stop")
    assert any("w1 first (canary" in warning for warning in p.warnings)


def test_slots_keep_batches_in_order_on_every_host():
    p = plan(on_hosts("B", rollout=ROLLOUT), serving("A"))
    widths = {h: len(p.slots(h, "rollout")) for h in p.hosts}
    assert len(set(widths.values())) == 1  # every host walks the same slots
    first_w4 = next(i for i, s in enumerate(p.slots("w4", "rollout")) if s)
    last_w2 = max(i for i, s in enumerate(p.slots("w2", "rollout")) if s)
    assert last_w2 < first_w4  # batch 2 runs after batch 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
def test_every_web_host_switches_once_and_the_canary_is_watched(n_webs, canary, batch):
    webs = WEBS[:n_webs]
    p = plan(on_hosts("B", webs, rollout={"canary": canary, "batch": batch}), serving("A", webs))
    switched = [s.host for s in p.steps if s.kind == "switch"]
    assert sorted(switched) == sorted(h.name for h in webs)
    assert [s.host for s in p.steps if s.kind == "watch"] == [h.name for h in webs[:canary]]
    waves = [s.wave for s in p.steps if s.kind == "switch" and s.phase == "rollout"]
    assert waves == sorted(waves) and (not waves or max(waves) == -(-(n_webs - canary) // batch))
    after = apply_plan(p, serving("A", webs), on_hosts("B", webs))
    assert plan(on_hosts("B", webs, rollout={"canary": canary, "batch": batch}), after).empty


def test_a_first_deploy_has_nothing_to_roll_out():
    d = on_hosts("A", rollout=ROLLOUT)
    p = plan(d, {h.name: HostObserved() for h in d.hosts})
    assert not [s for s in p.steps if s.kind == "watch" or s.phase == "rollout"]


def test_a_schema_change_is_refused_with_a_rollout():
    p = plan(on_hosts("S1", rollout=ROLLOUT), serving("A"))
    assert p.status == BLOCKED and not p.steps
    assert "rollout: release" in p.blocked[0] and "schema version 1" in p.blocked[0] and "in_place" in p.blocked[0]
    # in place: both releases on the one live database, said in the plan
    q = plan(on_hosts("S1", rollout=ROLLOUT, schema_change="in_place"), serving("A"))
    assert q.status != BLOCKED and any("schema_change: in_place" in w for w in q.warnings)


def test_hosts_serving_different_releases_are_said():
    half = serving("A")
    b = serving("B")
    half["w3"], half["w4"] = b["w3"], b["w4"]
    p = plan(on_hosts("B"), half)
    assert any(w.startswith("web hosts serve different releases now:") and "on w1, w2" in w and "on w3, w4" in w
               for w in p.warnings)


@pytest.mark.parametrize("field,value,message", [
    ("watch", "30 seconds", "must be a duration like 30s"),
    ("max_error_rate", "one", "must be a percentage like 1%"),
    ("canary", 0, "greater than or equal to 1"),
])
def test_bad_rollout_fields_name_the_field(field, value, message):
    text = ("app: a\nrepository: .\nrelease: abcdef1\ndjango: {settings: a.settings}\n"
            f"rollout: {{{field}: {value!r}}}\n")
    with pytest.raises(StateFileError) as info:
        parse_state(text, "production.yaml")
    assert f"rollout.{field}" in str(info.value) and message in str(info.value)


def test_rollout_values():
    r = Rollout(watch="2m", max_error_rate="0.5%")
    assert (r.watch, r.max_error_rate) == (120, 0.5)
    assert isinstance(c.Watch.kind, str)
