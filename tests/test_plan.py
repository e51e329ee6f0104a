"""The plan, without hosts: minimal, deterministic, idempotent (property tests with a step simulator)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinned.state.desired import Desired, HostSpec
from pinned.state.model import Django, Site, State
from pinned.state.observed import FileOnHost, HostObserved
from pinned.state.plan import plan
from pinned.state.render import plan_json, render_text
from pinned.state.source import Release
from simulate import apply_plan

HOST = HostSpec("server", "10.0.0.5", ("web", "db"))
# Synthetic releases: A and B share migrations (one schema version), B2 also needs other requirements.
RELEASES = {
    "A": Release("a" * 40, 1_700_000_000, "fp0", "req0", ("crops/migrations/0001_initial.py",), "Django\n"),
    "B": Release("b" * 40, 1_700_000_100, "fp0", "req0", ("crops/migrations/0001_initial.py",), "Django\n"),
    "B2": Release("c" * 40, 1_700_000_200, "fp0", "req1", ("crops/migrations/0001_initial.py",), "Django\nrich\n"),
}
# Code-only releases R1..R6 (schema 0) and S1, S2 (another schema: new migrations).
for n in range(1, 7):
    RELEASES[f"R{n}"] = Release(f"{n:x}" * 40, 1_700_001_000 + n, "fp0", "req0", ("crops/migrations/0001_initial.py",),
                                "Django\n")
for n in (1, 2):
    RELEASES[f"S{n}"] = Release(f"e{n}" * 20, 1_700_002_000 + n, "fp1", "req0",
                                ("crops/migrations/0001_initial.py", "crops/migrations/0002_more.py"), "Django\n")
BUILD_KINDS = {"venv", "release", "migrate", "database"}


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
    assert kinds.index("packages") < kinds.index("user") < kinds.index("venv") < kinds.index("database")
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
    # A was kept warm after the switch to B: no start, B kept warm in turn (tests/test_warm_plan.py).
    assert {s.kind for s in back.steps} == {"app", "switch", "warm"}
    assert not BUILD_KINDS & {s.kind for s in back.steps}
    a0, b0 = desired("A", keep_warm="0"), desired("B", keep_warm="0")
    back = plan(a0, converge(b0, converge(a0, EMPTY)))
    assert {s.kind for s in back.steps} == {"app", "switch", "stop"}


def test_secrets_are_masked_in_text_and_json():
    p = plan(desired("A"), EMPTY)
    text = render_text(p, "s.yaml")
    assert "+ secrets /etc/pinned/agroguia/secrets.env (sensitive)" in text
    secrets_steps = [s for s in plan_json(p, "s.yaml")["steps"] if s["kind"] == "secrets"]
    assert secrets_steps == [{"host": "server", "action": "add", "kind": "secrets", "phase": "secrets",
                              "target": "(sensitive)", "reason": "generated on the server"}]


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
        removed = {getattr(s.change, "release_id", None) for s in p.steps if s.action == "remove"}
        assert d.release.id not in removed  # the pinned release is never stopped or removed
        if on_disk:
            assert not BUILD_KINDS & {s.kind for s in p.steps}, p.steps
        observed = apply_plan(p, observed, d)
        assert plan(d, observed).empty
        assert observed["server"].current == d.release.id


DRIFTS = ["site", "socket-template", "stop-service", "current", "default-site", "secrets-mode", "upstream",
          "user-missing", "db-grant", "by-id-missing"]


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
        elif drift == "by-id-missing":  # a run killed between renaming a release and linking it
            o = replace(o, by_id={k: v for k, v in o.by_id.items() if k != rid})
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


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(sorted(RELEASES)), min_size=1, max_size=10), st.integers(min_value=1, max_value=3))
def test_retention_never_prunes_what_must_stay(sequence, keep):
    observed = EMPTY
    for tag in sequence:
        d = desired(tag, keep_releases=keep)
        before = observed["server"]
        p = plan(d, observed)
        pruned = {s.change.release_id for s in p.steps if s.kind == "prune" and s.change.release_id}
        assert d.release.id not in pruned
        assert all(rid < d.release.id for rid in pruned)  # never one newer than the pinned release
        assert all(s.action == "remove" for s in p.steps if s.kind == "prune")
        if d.release.id in before.releases:
            assert not BUILD_KINDS & {s.kind for s in p.steps}
        observed = apply_plan(p, observed, d)
        after = observed["server"]
        assert after.current == d.release.id and d.release.id in after.releases
        assert all(s.last in after.releases for s in after.schemas.values() if s.last)  # every `last` survives
        assert plan(d, observed).empty
        for number in after.schemas:
            kept = [rid for rid, r in after.releases.items() if r.schema == number]
            protected = {after.current} | {s.last for s in after.schemas.values() if s.last} | {
                rid for rid in kept if rid > d.release.id} | {
                rid for rid in kept if after.unit_active(f"pinned-warm-agroguia@{rid}.timer")}  # warm
            assert len(kept) <= max(keep, len(protected & set(kept)))


def test_schema_change_copies_then_rollback_warns_then_forward_returns():
    a, s1 = desired("A"), desired("S1")
    on_a = converge(a, EMPTY)
    p = plan(s1, on_a)
    database = [s for s in p.steps if s.kind == "database"]
    assert len(database) == 1 and database[0].target == "agroguia_v1"
    assert database[0].reason.startswith("copy of agroguia_v0")
    migrate = [s for s in p.steps if s.kind == "migrate"]
    assert len(migrate) == 1 and "0002_more" in migrate[0].reason and "0001_initial" not in migrate[0].reason
    on_s1 = apply_plan(p, on_a, s1)
    history = ("2026-01-01T00:00:00Z switch from=none to=" + a.release.id,
               "2026-01-02T00:00:00Z switch from=" + a.release.id + " to=" + s1.release.id)
    on_s1 = {"server": replace(on_s1["server"], history=history)}
    back = plan(a, on_s1)
    assert {s.kind for s in back.steps} == {"app", "switch", "warm"}
    assert back.warnings and "agroguia_v1 since it became current (2026-01-02T00:00:00Z)" in back.warnings[0]
    on_a2 = apply_plan(back, on_s1, a)
    on_a2 = {"server": replace(on_a2["server"], history=history + (
        "2026-01-03T00:00:00Z switch from=" + s1.release.id + " to=" + a.release.id,))}
    forward = plan(s1, on_a2)
    assert {s.kind for s in forward.steps} == {"app", "switch", "warm"}
    assert "returning to agroguia_v1 as it was left" in forward.warnings[0] and "2026-01-03" in forward.warnings[0]


def test_multi_host_plan_converges_and_shares_secrets():
    hosts = (HostSpec("web1", "10.0.0.11", ("web",)), HostSpec("web2", "10.0.0.12", ("web",)),
             HostSpec("db", "10.0.0.13", ("db",)))
    d = replace(desired("A"), hosts=hosts)
    empty = {h.name: HostObserved() for h in hosts}
    p = plan(d, empty)
    kinds = {(s.host, s.kind) for s in p.steps}
    assert ("db", "secrets") in kinds and ("db", "secrets-read") in kinds
    assert ("web1", "secrets-copy") in kinds and ("web2", "secrets-copy") in kinds
    assert [s.host for s in p.steps if s.kind == "migrate"] == ["web1"]
    assert {s.host for s in p.steps if s.kind == "database"} == {"db"}
    assert not any(s.kind in ("release", "app", "switch") for s in p.steps if s.host == "db")
    # Phases: every host's step of an earlier phase comes before any host's step of a later one.
    from pinned.state.plan import PHASES
    assert p.width("start") == 1 and PHASES.index("start") < PHASES.index("switch")
    converged = apply_plan(p, empty, d)
    assert plan(d, converged).empty


def test_each_web_host_builds_from_its_own_served_release_as_the_engine_measured_it():
    """transfers are per web host (pinned/engine.py base_files): a delta is used only for the base release it
    was measured from; otherwise (another base, or nothing known of it) the release is sent whole."""
    a, b = desired("A"), desired("B")
    on_a = converge(a, EMPTY)
    served = on_a["server"].current_release
    whole = {"bytes": 3287, "changed": None, "deleted": (), "archive": "/cache/b.tar.gz"}
    delta = {"base": served.id, "bytes": 556, "changed": 2, "deleted": ("old.py",),
             "replaced": ("crops/release.py", "index.html", "old.py"), "archive": "/cache/b-delta.tar.gz"}

    def build(transfers):
        step = next(s for s in plan(replace(b, transfers=transfers), on_a).steps if s.kind == "release")
        return step.change, step.reason

    change, reason = build({"": whole, "server": delta})
    assert change.base_dir == f"/srv/agroguia/versions/0/{served.id}" and change.replaced == delta["replaced"]
    assert change.archive == "/cache/b-delta.tar.gz"
    assert f"as hard links of {served.id} + 2 changed file(s), 1 deleted, 556 bytes to send" in reason
    for transfers in ({"": whole}, {"": whole, "server": {**delta, "base": "20200101T000000-000000000000"}},
                      {"": whole, "other-host": delta}):
        change, reason = build(transfers)
        assert (change.base_dir, change.replaced, change.archive) == ("", (), "/cache/b.tar.gz")
        assert reason.endswith(", 3287 bytes to send")


def test_a_unit_file_new_to_systemd_is_written_without_a_daemon_reload():
    """systemd loads a unit it does not hold from disk when it is first named: a first deploy's unit files skip
    the daemon-reload; a changed one, a drop-in, or a new file whose units systemd still holds reload it."""
    from pinned.state.desired import ManagedFile
    from pinned.state.plan import reload_of
    d = desired("A")
    first = {s.target: s.change for s in plan(d, EMPTY).steps if s.kind == "config"}
    units = [p for p in first if p.startswith("/etc/systemd/system/")]
    assert "/etc/systemd/system/agroguia@.service" in units and len(units) >= 3
    assert all(first[p].reload == "" for p in units)
    after = converge(d, EMPTY)
    template = "/etc/systemd/system/agroguia@.service"
    drifted = replace(after["server"], files={**after["server"].files, template: replace(
        after["server"].files[template], content="[Service]\n")})
    again = [s.change for s in plan(d, {"server": drifted}).steps if s.target == template]
    assert [ch.reload for ch in again] == ["systemd"]
    wanted = ManagedFile(template, "[Service]\n", "systemd service template", reload="systemd")
    running = HostObserved(units={"agroguia@r1.service": {"active": "active", "enabled": False}})
    assert reload_of(wanted, running) == "systemd"  # its file was removed by hand while an instance runs
    assert reload_of(wanted, HostObserved(units={"other@r1.service": {"active": "active"}})) == ""
    assert reload_of(wanted, HostObserved(files={template: None})) == ""  # observed: asked for, not there
    dropin = ManagedFile("/etc/systemd/system/certbot.service.d/pinned-agroguia.conf", "[Service]\n", "drop-in",
                         reload="systemd")
    assert reload_of(dropin, HostObserved()) == "systemd"


def test_a_first_deploy_writes_the_write_freeze_files_early_with_nothing_to_reload():
    """nginx reads the write freeze's files only through the site's file: on a host without it they go with the
    system phase (behind the virtualenv's build); once the site is there, a change to them is tested and
    reloaded in the site phase."""
    d = desired("A")
    freeze = "/etc/nginx/pinned/agroguia-freeze.conf"
    # the host as observed: the files asked for, none there
    asked = {s.target: None for s in plan(d, EMPTY).steps if s.kind == "config"}
    steps = plan(d, {"server": HostObserved(files=asked)}).steps
    kinds = [s.kind for s in steps]
    early = [s for s in steps if s.target == freeze]
    assert [(s.phase, s.change.reload) for s in early] == [("system", "")]
    assert kinds.index("venv-start") < steps.index(early[0]) < kinds.index("venv")
    assert steps[-1].target == "/etc/nginx/conf.d/pinned-agroguia.conf" and steps[-1].change.reload == "nginx"
    after = converge(d, EMPTY)
    drifted = replace(after["server"], files={**after["server"].files, freeze: replace(
        after["server"].files[freeze], content="# edited\n")})
    late = [s for s in plan(d, {"server": drifted}).steps if s.target == freeze]
    assert [(s.phase, s.change.reload) for s in late] == [("site", "nginx")]


def test_debian_default_site_is_removed_within_the_sites_own_reload_when_there_is_one():
    d = desired("A")
    first = plan(d, EMPTY).steps
    removal = [s for s in first if s.kind == "nginx-default-site"]
    assert [s.change.reload for s in removal] == [""]  # the site's file follows: its test and reload cover it
    assert first[-1].change.reload == "nginx" and first.index(removal[0]) < len(first) - 1
    after = converge(d, EMPTY)
    back = replace(after["server"], paths={**after["server"].paths, "/etc/nginx/sites-enabled/default": {
        "type": "link"}})  # an nginx upgrade put it back; the site is as wanted
    again = plan(d, {"server": back}).steps
    assert [(s.kind, s.change.reload) for s in again] == [("nginx-default-site", "nginx")]


def test_a_pruned_release_names_its_units_only_when_systemd_holds_one():
    """A release kept stopped is pruned with one `rm` (no systemctl); one whose unit systemd still lists (a
    failed service, an enabled socket) has its units named, so prune.sh stops and disables them."""
    observed = EMPTY
    for tag in ("R1", "R2", "R3"):
        observed = converge(desired(tag, keep_warm="0"), observed)
    d = desired("R4", keep_releases=1, keep_warm="0")
    o = observed["server"]
    units = {u: st for u, st in o.units.items() if "R1" not in u and "R2" not in u}
    r1, r2 = RELEASES["R1"], RELEASES["R2"]
    rid1, rid2 = sorted(rid for rid in o.releases if rid != o.current)
    units[f"agroguia@{rid2}.service"] = {"active": "failed", "enabled": False}
    prunes = {s.change.release_id: s.change for s in plan(d, {"server": replace(o, units=units)}).steps
              if s.kind == "prune" and s.change.release_id}
    assert set(prunes) == {rid1, rid2, o.current} and r1.commit[:12] in rid1 and r2.commit[:12] in rid2
    assert prunes[o.current].service_unit == f"agroguia@{o.current}.service"  # it serves until the switch
    assert (prunes[rid1].socket_unit, prunes[rid1].service_unit) == ("", "")
    assert (prunes[rid2].socket_unit, prunes[rid2].service_unit) == (f"agroguia@{rid2}.socket",
                                                                     f"agroguia@{rid2}.service")


def test_a_bare_host_installs_python3_venv_first_and_the_rest_beside_the_virtualenvs_build():
    """On a bare host the virtualenv's build (venv-start) starts once python3-venv is in (apt-get update once);
    then nginx and MariaDB install in the background (packages-start) while the users, folders and secrets are
    made, waited for before the database's account. With python3-venv already there: one install, in line."""
    steps = plan(desired("A"), EMPTY).steps
    head = [(s.kind, getattr(s.change, "packages", None)) for s in steps[:3]]
    assert head == [("packages", ("python3-venv",)), ("venv-start", None),
                    ("packages-start", ("nginx", "mariadb-server"))]
    kinds = [s.kind for s in steps]
    waited = [s for s in steps if s.kind == "packages" and s.change.job]
    assert [(s.change.packages, s.change.update, s.phase) for s in waited] == [
        (("nginx", "mariadb-server"), False, "accounts")]
    assert waited[0].change.job == steps[2].change.job and waited[0].change.undo == steps[2].change.undo
    at = steps.index(waited[0])
    assert kinds.index("user") < kinds.index("secrets") < at < kinds.index("db-user") < kinds.index("database")
    provisioned = HostObserved(packages=frozenset({"python3-venv"}))
    again = [s for s in plan(desired("A"), {"server": provisioned}).steps if s.kind.startswith("packages")]
    assert [(s.kind, s.change.packages, s.change.update, s.change.job) for s in again] == [
        ("packages", ("nginx", "mariadb-server"), True, "")]
