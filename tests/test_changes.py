"""The plan → operation contract: every change type has one operation taking exactly its fields, and a
rule in the simulator; what the operations emit for given changes (pyinfra-style: change in → commands
out); a blocked plan is its own state, never "No changes"."""

from __future__ import annotations

import inspect
import json
import shlex
from dataclasses import fields, replace

import pytest
from test_plan import EMPTY, desired

from pinned.operations import files, release
from pinned.operations.table import OPERATIONS
from pinned.state import changes as c
from pinned.state.desired import HostSpec
from pinned.state.observed import HostObserved
from pinned.state.plan import BLOCKED, CHANGES, CONVERGED, plan
from pinned.state.render import plan_json, render_text
from simulate import RULES, apply_plan


def test_every_change_type_has_an_operation_taking_exactly_its_fields_and_a_simulator_rule():
    assert set(OPERATIONS) == set(c.KINDS) == set(RULES)
    for kind in c.KINDS:
        operation = OPERATIONS[kind]
        parameters = inspect.signature(operation._inner).parameters
        assert [f.name for f in fields(kind)] == list(parameters), kind.__name__
    assert len({k.kind for k in c.KINDS}) == len(c.KINDS)


def test_a_plan_covers_every_kind_and_calls_each_operation_with_its_change():
    """A first deploy to web + db hosts (with scheduled backups), a code change with a new requirement, a
    schema change and a retention prune together use every kind of change; each change's arguments fit its operation."""
    hosts = (HostSpec("web1", "10.0.0.11", ("web",)), HostSpec("db", "10.0.0.13", ("db",)))
    seen = set()
    observed = {h.name: HostObserved() for h in hosts}
    for tag in ("A", "B2", "S1", "R1", "R2", "R3"):
        d = replace(desired(tag, keep_releases=1, users=[{"name": "deploy", "sudo": True}],
                            backups={"on_calendar": "daily", "keep": 3}), hosts=hosts)
        p = plan(d, observed)
        for step in p.steps:
            seen.add(type(step.change))
            inspect.signature(OPERATIONS[type(step.change)]._inner).bind(**step.change.arguments())
        observed = apply_plan(p, observed, d)
    observed["web1"] = replace(observed["web1"], paths={**observed["web1"].paths,
                                                        "/etc/nginx/sites-enabled/default": {"type": "link"}},
                               units={**observed["web1"].units, "nginx.service": {"active": "failed"}})
    seen |= {type(s.change) for s in plan(d, observed).steps}
    # A changed env restarts the current release.
    seen |= {type(s.change) for s in plan(replace(d, state=d.state.model_copy(update={"env": {"FOO": "1"}})),
                                          observed).steps}
    # A rollout of a code change to two web hosts watches the canary.
    webs = (HostSpec("w1", "10.0.0.11", ("web",)), HostSpec("w2", "10.0.0.12", ("web",)), hosts[1])
    on_two = replace(desired("A"), hosts=webs)
    first = apply_plan(plan(on_two, {h.name: HostObserved() for h in webs}), {h.name: HostObserved() for h in webs},
                       on_two)
    seen |= {type(s.change) for s in plan(replace(desired("B", rollout={"canary": 1}), hosts=webs), first).steps}
    assert seen == set(c.KINDS)


def commands(operation, change) -> list[str]:
    out = []
    for command in operation._inner(**change.arguments()):
        out.append(command.get_raw_value() if hasattr(command, "get_raw_value") else repr(command))
    return out


def test_switch_moves_current_and_upstream_in_one_command_with_every_value_quoted():
    d = desired("A")
    step = next(s for s in plan(d, EMPTY).steps if s.kind == "switch")
    ch = step.change
    assert (ch.current, ch.target, ch.served) == ("/srv/agroguia/current", f"versions/0/{d.release.id}",
                                                  "/srv/agroguia/versions/0/served")
    cmds = list(release.switch._inner(**ch.arguments()))
    assert len(cmds) == 1  # one script: upstream + current + reload (no upload: a cut host times out)
    script = cmds[0].get_raw_value()
    for value in (ch.current, ch.target, ch.history, ch.release_id, ch.upstream_path):
        assert shlex.quote(value) in script


def test_link_is_never_pyinfras_files_link():
    cmds = list(files.link._inner(path="/srv/a/versions/0/last", target="20260101T000000-abcdefabcdef"))
    raw = cmds[0].get_raw_value()
    assert "mv -T" in raw and "ln -s" in raw and "rm -f '/srv/a/versions/0/last'" not in raw


def test_build_refuses_to_run_without_its_archive():
    step = next(s for s in plan(desired("A"), EMPTY).steps if s.kind == "release")
    assert step.change.archive == ""  # pure tests make no archive: the engine does
    with pytest.raises(ValueError, match="no archive"):
        list(release.build._inner(**step.change.arguments()))


def test_plan_equality_covers_what_runs():
    a = plan(desired("A"), EMPTY)
    b = plan(replace(desired("A"), by="someone@elsewhere"), EMPTY)
    assert [s.target for s in a.steps] == [s.target for s in b.steps] and a != b


def test_blocked_plan_is_never_no_changes():
    d = desired("A")
    on = apply_plan(plan(d, EMPTY), EMPTY, d)
    assert plan(d, on).status == CONVERGED and plan(desired("B"), on).status == CHANGES
    dropped = {"server": replace(on["server"], databases=frozenset())}
    p = plan(d, dropped)
    assert p.status == BLOCKED and p.empty and p.blocked
    text = render_text(p, "state/x.yaml")
    assert "No changes" not in text and "BLOCKED" in text and "agroguia_v0 is missing" in text
    doc = plan_json(p, "state/x.yaml")
    assert doc["status"] == "blocked" and doc["blocked"] and doc["format_version"] == 1
    json.dumps(doc)
