"""Saved plans without hosts: what the digests see, what a refusal names, reading a plan file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinned import saved_plan
from pinned.state.observed import FileOnHost, HostObserved, ReleaseOnDisk

NGINX = "/etc/nginx/conf.d/pinned-agroguia.conf"


def observed(**changes) -> HostObserved:
    base = HostObserved(
        reachable_python=True, python="3.13.5", packages=frozenset({"nginx", "mariadb-server"}),
        paths={"/srv/agroguia": {"type": "directory", "mode": "755", "owner": "root", "group": "root"}},
        files={NGINX: FileOnHost("server { }\n", "644", "root", "root")},
        current="20261120T100000Z-aaaaaaaaaaaa", current_target="versions/0/20261120T100000Z-aaaaaaaaaaaa",
        releases={"20261120T100000Z-aaaaaaaaaaaa": ReleaseOnDisk("20261120T100000Z-aaaaaaaaaaaa", 0, "ready")},
        units={"agroguia@20261120T100000Z-aaaaaaaaaaaa.service": {"active": "active", "enabled": False}},
        mysql_running=True, databases=frozenset({"agroguia_v0"}), history=("t1 switch from=none to=a",),
        db_stats={"agroguia_v0": (11, 40, 16384)},
    )
    return dataclasses.replace(base, **changes)


def test_a_hand_edited_file_is_named():
    before = saved_plan.observed_digests(observed())
    after = saved_plan.observed_digests(observed(files={NGINX: FileOnHost("server { } # edited\n", "644", "root",
                                                                            "root")}))
    assert saved_plan.host_changes(before, after) == [f"file {NGINX} changed"]


def test_a_moved_link_is_named_once():
    before = saved_plan.observed_digests(observed())
    after = saved_plan.observed_digests(observed(current="20261121T100000Z-bbbbbbbbbbbb",
                                                 current_target="versions/0/20261121T100000Z-bbbbbbbbbbbb"))
    assert saved_plan.host_changes(before, after) == ["the `current` link changed"]


def test_writes_to_the_database_do_not_move_the_plan():
    before = saved_plan.observed_digests(observed())
    after = saved_plan.observed_digests(observed(db_stats={"agroguia_v0": (11, 90_000, 9_000_000)}))
    assert saved_plan.host_changes(before, after) == []


def test_gone_and_appeared_are_told_apart():
    before = saved_plan.observed_digests(observed())
    after = saved_plan.observed_digests(observed(files={}, units={"x.timer": {"active": "active", "enabled": True}}))
    assert saved_plan.host_changes(before, after) == [
        f"file {NGINX} is gone", "unit agroguia@20261120T100000Z-aaaaaaaaaaaa.service is gone",
        "unit x.timer appeared"]


@given(st.sampled_from([f.name for f in dataclasses.fields(HostObserved) if f.name not in saved_plan.IGNORED]),
       st.text(min_size=1, max_size=20))
def test_every_fact_but_the_sizes_moves_the_digests(name, text):
    value = getattr(observed(), name)
    changed = {bool: lambda v: not v, str: lambda v: v + text, frozenset: lambda v: v | {text},
               tuple: lambda v: (*v, text), dict: lambda v: {**v, text: {"x": 1}}}
    new = changed[type(value)](value) if value is not None else {"digest": text}
    assert saved_plan.observed_digests(observed()) != saved_plan.observed_digests(observed(**{name: new}))


def _run(tmp_path: Path, commit="c" * 40, **obs):
    state = tmp_path / "production.yaml"
    if not state.exists():
        state.write_text("app: agroguia\n")
    checked = SimpleNamespace(env="production", path=state, release=SimpleNamespace(commit=commit, id="r1"))
    return SimpleNamespace(checked=checked, display_path=str(state), observed={"web1": observed(**obs)})


PLAN = {"steps": [{"host": "web1", "phase": "switch", "action": "~", "kind": "switch", "target": "current",
                   "reason": "copy of agroguia_v0: 11 tables, ~40 rows"}]}


def test_a_plan_applies_only_to_what_it_was_made_from(tmp_path):
    run = _run(tmp_path)
    doc = saved_plan.make(run, PLAN, ["web1"], "ops@laptop")
    assert saved_plan.differences(doc, run, PLAN, ["web1"]) == []
    # the reasons' estimates may differ; the steps may not
    assert saved_plan.differences(doc, run, {"steps": [{**PLAN["steps"][0], "reason": "~90 rows"}]}, ["web1"]) == []
    assert saved_plan.differences(doc, run, {"steps": []}, ["web1"]) == [
        "the steps computed now differ from the saved ones"]
    moved = _run(tmp_path, commit="d" * 40, mysql_running=False)
    run.checked.path.write_text("app: agroguia\nrelease: d\n")
    assert saved_plan.differences(doc, moved, PLAN, ["web1", "db1"]) == [
        f"{run.display_path} changed since the plan was made",
        "the pinned release is dddddddddddd now, cccccccccccc in the plan",
        "the plan is for hosts web1; this run has db1, web1",
        "web1: MariaDB running changed"]


def test_reading_plan_files(tmp_path):
    with pytest.raises(saved_plan.SavedPlanError, match="no such file"):
        saved_plan.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(saved_plan.SavedPlanError, match="not a saved plan"):
        saved_plan.load(str(bad))
    bad.write_text(json.dumps({"format": "pinned-saved-plan", "version": 99}))
    with pytest.raises(saved_plan.SavedPlanError, match="format version 99"):
        saved_plan.load(str(bad))
    good = tmp_path / "p.json"
    saved_plan.write(str(good), saved_plan.make(_run(tmp_path), PLAN, ["web1"], "ops@laptop"))
    assert saved_plan.load(str(good))["hosts"].keys() == {"web1"}


def test_the_plan_file_is_named_on_pyinfras_command_line():
    assert saved_plan.saved_plan_path(["pyinfra", "--data", "env=x", "--data", "plan=/p.json"]) == "/p.json"
    assert saved_plan.saved_plan_path(["pyinfra", "--data=plan=p.json"]) == "p.json"
    assert saved_plan.saved_plan_path(["pyinfra", "--data", "env=x"]) is None
