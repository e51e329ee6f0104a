"""The write freeze and the database grants in the plan (pure): a schema change by copy freezes writes from
the copy to the switch and lifts it after; in place there is no copy and no freeze; the app's accounts get
privileges on its databases by name only."""

from __future__ import annotations

from dataclasses import replace

from test_plan import EMPTY, converge, desired

from pinned.state import changes as c
from pinned.state.desired import HostSpec
from pinned.state.layout import Layout
from pinned.state.observed import HostObserved
from pinned.state.plan import PHASES, account_grants, plan
from simulate import apply_plan


def order(p, kind, action=None):
    return [i for i, s in enumerate(p.steps) if s.kind == kind and (action is None or s.action == action)]


def test_first_deploy_has_no_freeze():
    assert not {"write-freeze", "db-freeze"} & {s.kind for s in plan(desired("A"), EMPTY).steps}


def test_schema_change_by_copy_freezes_writes_from_the_copy_to_the_switch():
    on_a = converge(desired("A"), EMPTY)
    p = plan(desired("S1"), on_a)
    phase = {s.kind + s.action: PHASES.index(s.phase) for s in p.steps}
    # built before the freeze; copied, migrated, started and switched inside it; lifted after the switch
    assert phase["releaseadd"] < phase["write-freezeadd"] < phase["db-freezeadd"] < phase["databaseadd"]
    assert phase["databaseadd"] < phase["migratechange"] < phase["appadd"] < phase["switchchange"]
    assert phase["switchchange"] < phase["write-freezeremove"] == phase["db-freezeremove"]
    freeze = next(s.change for s in p.steps if s.kind == "write-freeze" and s.action == "add")
    assert "return 503" in freeze.content and "return 503" not in freeze.off_content
    guard = next(s.change for s in p.steps if s.kind == "db-freeze" and s.action == "add")
    assert (guard.database, guard.grant) == ("agroguia_v0", "agroguia\\_v0")
    assert any(w.startswith("write freeze: writes are refused (503 + Retry-After) for ~") for w in p.warnings)
    after = apply_plan(p, on_a, desired("S1"))
    assert plan(desired("S1"), after).empty  # the freeze conf is off again and every grant is ALL
    grants = account_grants(after["server"].db_users["agroguia@localhost"])
    assert grants == {"agroguia\\_v0": "ALL PRIVILEGES", "agroguia\\_v1": "ALL PRIVILEGES"}


def test_a_run_that_died_frozen_is_thawed_by_the_next_plan():
    on_a = converge(desired("A"), EMPTY)
    p = plan(desired("S1"), on_a)
    frozen = on_a
    for step in p.steps:  # killed right after the db guard: nginx refuses writes, the account only reads
        frozen = apply_plan(replace(p, steps=(step,)), frozen, desired("S1"))
        if step.kind == "db-freeze":
            break
    again = plan(desired("A"), frozen)
    kinds = {(s.kind, s.action) for s in again.steps}
    assert ("config", "change") in kinds and ("db-user", "change") in kinds
    assert plan(desired("A"), apply_plan(again, frozen, desired("A"))).empty


def test_in_place_migrates_the_live_database_with_no_copy_and_no_freeze():
    on_a = converge(desired("A"), EMPTY)
    d = desired("S1", schema_change="in_place")
    p = plan(d, on_a)
    kinds = {s.kind for s in p.steps}
    assert not {"database", "write-freeze", "db-freeze"} & kinds
    migrate = next(s for s in p.steps if s.kind == "migrate")
    assert migrate.target == "agroguia_v0" and migrate.change.drop_on_failure is False
    assert "0002_more" in migrate.reason and "0001_initial" not in migrate.reason
    assert any("in_place" in w and "rolling back across this change keeps the new schema" in w for w in p.warnings)
    after = apply_plan(p, on_a, d)
    assert plan(d, after).empty
    assert after["server"].schemas[0].fingerprint == d.release.fingerprint
    back = plan(desired("A", schema_change="in_place"), after)  # rolling back: a switch, on the same database
    assert {s.kind for s in back.steps} == {"app", "switch", "warm"}  # A was kept warm
    assert any("changed in place" in w for w in back.warnings)


def test_accounts_get_privileges_per_database_never_a_pattern():
    """shop and shop_vip on one db host: shop's account can never reach shop_vip_v0."""
    host = HostSpec("server", "10.0.0.5", ("web", "db"))
    shop = replace(desired("A", app="shop"), hosts=(host,))
    on = apply_plan(plan(shop, {"server": HostObserved()}), {"server": HostObserved()}, shop)
    on = {"server": replace(on["server"], databases=on["server"].databases | {"shop_vip_v0"})}
    grants = account_grants(on["server"].db_users["shop@localhost"])
    assert grants == {Layout("shop").database_grant(0): "ALL PRIVILEGES"} == {"shop\\_v0": "ALL PRIVILEGES"}
    assert plan(shop, on).empty
    # An account left with the old pattern grant (and anything not pinned's) is put right.
    old = {"server": replace(on["server"], db_users={"shop@localhost": [
        "GRANT ALL PRIVILEGES ON `shop\\_v%`.* TO `shop`@`localhost`", "GRANT SELECT ON *.* TO `shop`@`localhost`"]})}
    fix = next(s for s in plan(shop, old).steps if s.kind == "db-user")
    assert fix.change.revoke == ("*",) and fix.change.grant == ("shop\\_v0",)
    assert isinstance(fix.change, c.DbUser)
