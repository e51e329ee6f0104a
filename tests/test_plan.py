"""The plan, without hosts: minimal, deterministic, idempotent (property tests with a step simulator)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulate import apply_plan
from state.desired import Desired, HostSpec
from state.model import Django, Site, State
from state.observed import FileOnHost, HostObserved
from state.plan import plan
from state.render import plan_json, render_text
from state.source import Release

HOST = HostSpec("server", "10.0.0.5", ("web", "db"))
# Synthetic releases: A and B share migrations (one schema version), B2 also needs other requirements.
RELEASES = {
    "A": Release("a" * 40, 1_700_000_000, "fp0", "req0", ("crops/migrations/0001_initial.py",), "Django\n"),
    "B": Release("b" * 40, 1_700_000_100, "fp0", "req0", ("crops/migrations/0001_initial.py",), "Django\n"),
    "B2": Release("c" * 40, 1_700_000_200, "fp0", "req1", ("crops/migrations/0001_initial.py",), "Django\nrich\n"),
}
BUILD_KINDS = {"venv", "release", "migrate"}


def desired(tag: str, **state_changes) -> Desired:
    rel = RELEASES[tag]
    fields = {"app": "agroguia", **state_changes}
    state = State(repository="/src", release=rel.commit, django=Django(settings="agroguia.settings"),
                  site=Site(health_url="/health/"), **fields)
    return Desired(env="test", state=state, release=rel, hosts=(HOST,))


def converge(d: Desired, observed: dict[str, HostObserved]) -> dict[str, HostObserved]:
    return apply_plan(plan(d, observed), observed, d)


EMPTY = {"server": HostObserved()}


def test_fresh_host_gets_everything_in_order():
    p = plan(desired("A"), EMPTY)
    kinds = [s.kind for s in p.steps]
    assert kinds.index("packages") < kinds.index("user") < kinds.index("database") < kinds.index("venv")
    assert kinds.index("release") < kinds.index("migrate") < kinds.index("app") < kinds.index("switch")
    # Debian's default site goes after the switch, right before pinned's own site takes port 80.
    assert kinds.index("switch") < kinds.index("nginx-default-site") < len(kinds) - 1
    assert p.steps[-1].target == "/etc/nginx/conf.d/pinned-agroguia.conf"
    assert p.summary["add"] > 0 and not p.warnings


@pytest.mark.parametrize("app", ["agroguia", "agro_guia_staging"])
def test_converged_host_has_an_empty_plan(app):
    d = desired("A", app=app) if app != "agroguia" else desired("A")
    after = converge(d, EMPTY)
    again = plan(d, after)
    assert again.empty
    assert "No changes. Hosts match state/test.yaml." in render_text(again, "state/test.yaml")


def test_rollback_to_a_release_on_disk_is_a_link_switch():
    a, b = desired("A"), desired("B")
    on_a = converge(a, EMPTY)
    on_b = converge(b, on_a)
    back = plan(a, on_b)
    assert {s.kind for s in back.steps} == {"app", "switch", "stop"}
    assert not BUILD_KINDS & {s.kind for s in back.steps}


def test_secrets_are_masked_in_text_and_json():
    p = plan(desired("A"), EMPTY)
    text = render_text(p, "s.yaml")
    assert "+ secrets /etc/pinned/agroguia/secrets.env (sensitive)" in text
    secrets_steps = [s for s in plan_json(p, "s.yaml")["steps"] if s["kind"] == "secrets"]
    assert secrets_steps == [{"host": "server", "action": "add", "kind": "secrets", "target": "(sensitive)",
                              "reason": "generated on the server"}]


def test_hand_edited_config_is_drift_with_a_diff():
    d = desired("A")
    on = converge(d, EMPTY)
    site = "/etc/nginx/conf.d/pinned-agroguia.conf"
    edited = on["server"].files[site]
    drifted = {"server": replace(on["server"], files={**on["server"].files,
                                                      site: replace(edited, content=edited.content + "# hand edit\n")})}
    p = plan(d, drifted)
    assert [(s.action, s.kind, s.target) for s in p.steps] == [("change", "config", site)]
    assert "-# hand edit" in p.steps[0].diff
    assert plan(d, apply_plan(p, drifted, d)).empty


pins = st.lists(st.sampled_from(sorted(RELEASES)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(pins)
def test_any_sequence_of_pins_converges_and_rollbacks_never_build(sequence):
    observed = EMPTY
    for tag in sequence:
        d = desired(tag)
        on_disk = d.release.id in observed["server"].releases
        p = plan(d, observed)
        removed = {s.details.get("release_id") for s in p.steps if s.action == "remove"}
        assert d.release.id not in removed  # the pinned release is never stopped or removed
        if on_disk:
            assert not BUILD_KINDS & {s.kind for s in p.steps}, p.steps
        observed = apply_plan(p, observed, d)
        assert plan(d, observed).empty
        assert observed["server"].current == d.release.id


DRIFTS = ["site", "socket-template", "stop-service", "current", "default-site", "secrets-mode", "upstream",
          "user-missing", "db-grant"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["A", "B"]), st.lists(st.sampled_from(DRIFTS), min_size=1, max_size=4, unique=True))
def test_drift_is_planned_and_corrected(tag, drifts):
    other = "B" if tag == "A" else "A"
    d = desired(tag)
    o = converge(d, converge(desired(other), EMPTY))["server"]
    app = "agroguia"
    rid = d.release.id
    for drift in drifts:
        if drift == "site":
            path = "/etc/nginx/conf.d/pinned-agroguia.conf"
            o = replace(o, files={**o.files, path: replace(o.files[path], content="server {}\n")})
        elif drift == "socket-template":
            path = "/etc/systemd/system/agroguia@.socket"
            o = replace(o, files={**o.files, path: replace(o.files[path], mode="0600")})
        elif drift == "stop-service":
            o = replace(o, units={**o.units, f"{app}@{rid}.service": {"active": "inactive", "enabled": False}})
        elif drift == "current":
            other_id = desired(other).release.id
            o = replace(o, current=other_id, current_target=f"versions/0/{other_id}")
        elif drift == "default-site":
            o = replace(o, paths={**o.paths, "/etc/nginx/sites-enabled/default": {"type": "link"}})
        elif drift == "secrets-mode":
            o = replace(o, secrets={**o.secrets, "mode": "0644"})
        elif drift == "upstream":
            path = "/etc/nginx/pinned/agroguia-upstream.conf"
            o = replace(o, files={**o.files, path: FileOnHost("upstream x {}\n", "0644", "root", "root")})
        elif drift == "user-missing":
            o = replace(o, users={})
        elif drift == "db-grant":
            o = replace(o, db_users={k: ["GRANT SELECT ON *.* TO x"] for k in o.db_users})
    drifted = {"server": o}
    p = plan(d, drifted)
    assert not p.empty
    assert not BUILD_KINDS & {s.kind for s in p.steps}
    assert plan(d, apply_plan(p, drifted, d)).empty


def test_plan_is_deterministic():
    d = desired("B2")
    assert plan(d, EMPTY) == plan(d, EMPTY)
    assert render_text(plan(d, EMPTY), "x") == render_text(plan(d, EMPTY), "x")
