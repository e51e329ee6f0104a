"""Previews without hosts: the state file's `previews:`, their plan (built once, own units, own account,
own database only with other migrations), promote = pin with no rebuild, removal as `-` steps, and
`pinned preview add/remove` rewriting the state file's text (comments kept)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan import EMPTY, RELEASES, desired

from pinned.state import previews as pv
from pinned.state.model import StateFileError, parse_state
from pinned.state.plan import plan
from simulate import apply_plan

BASE = "app: shop\nrepository: .\nrelease: abcdef1\ndjango: {settings: shop.settings}\n"


def with_previews(d, spec: dict, server_names=None):
    """`d` with previews: name → (release tag, its address fields)."""
    state = d.state.model_copy(update={"previews": {}})
    data = state.model_dump()
    if server_names:
        data["site"]["server_names"] = server_names
    data["previews"] = {n: {"release": RELEASES[tag].commit, **extra} for n, (tag, extra) in spec.items()}
    state = type(state).model_validate(data)
    return replace(d, state=state, previews={n: RELEASES[tag] for n, (tag, _) in spec.items()})


def converge(d, observed):
    return apply_plan(plan(d, observed), observed, d)


def steps_of(p, kind):
    return [s for s in p.steps if s.kind == kind]


@pytest.mark.parametrize("text, field", [
    ("previews: {a: {release: abcdef2}}", "exactly one address"),
    ("previews: {a: {release: abcdef2, port: 8081, host: true}}", "exactly one address"),
    ("previews: {A_b: {release: abcdef2, port: 8081}}", "is not allowed"),
    ("previews: {a: {release: abcdef2, port: 80}}", "site's port or 443"),
    ("previews: {a: {release: abcdef2, port: 443}}", "site's port or 443"),
    ("previews: {a: {release: abcdef2, port: 8081}, b: {release: abcdef3, port: 8081}}", "also a's"),
    ("previews: {a: {release: abcdef2, host: true}}", "server_names"),
    ("previews: {a: {release: main, port: 8081}}", "is not allowed"),
    ("previews: {a: {release: abcdef2, port: 8081, database: delete}}", "database"),
])
def test_bad_previews_are_refused_naming_the_field(text, field):
    with pytest.raises(StateFileError, match="previews") as exc:
        parse_state(BASE + text, "prod.yaml")
    assert field in str(exc.value) and str(exc.value).startswith("prod.yaml: ")


@pytest.mark.parametrize("name", ["no", "off", "on", "yes", "null"])
def test_a_name_yaml_reads_as_no_text_is_refused_saying_to_quote_it(name):
    with pytest.raises(StateFileError) as exc:
        parse_state(BASE + f"previews: {{{name}: {{release: abcdef2, port: 8081}}}}", "prod.yaml")
    assert str(exc.value).startswith("prod.yaml: field 'previews'") and "write the name in quotes" in str(exc.value)
    assert list(parse_state(BASE + f"previews: {{'{name}': {{release: abcdef2, port: 8081}}}}").previews) == [name]


@given(st.from_regex(r"[a-z]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True))
@settings(max_examples=60, deadline=None)
def test_every_valid_name_gives_safe_unit_host_and_database_names(name):
    state = parse_state(BASE + f"previews: {{\"{name}\": {{release: abcdef2, port: 8081}}}}")
    assert list(state.previews) == [name]
    db = pv.db_name("shop", name)
    assert len(db) <= 64 and all(ch.isalnum() or ch == "_" for ch in db)
    assert pv.name_of_path("shop", pv.unit_file("shop", name, "service")) == name
    assert pv.name_of_path("shop", pv.nginx_conf("shop", name)) == name
    assert not pv.unit("shop", name, "service").startswith("shop@")  # never a release unit
    # nginx includes conf.d/*.conf sorted: the site's own server comes first, so it stays the port's implicit
    # default server (a request for an unknown name on port 80 never reaches a `host: true` preview).
    assert sorted([pv.nginx_conf("shop", name), "/etc/nginx/conf.d/pinned-shop.conf"])[0].endswith("pinned-shop.conf")


def test_a_preview_of_the_same_schema_runs_beside_current_on_the_current_database_read_only():
    a = converge(desired("A"), EMPTY)
    d = with_previews(desired("A"), {"try-b": ("B", {"port": 8081})})
    p = plan(d, a)
    b = RELEASES["B"]
    builds = steps_of(p, "release")
    assert [s.change.release_id for s in builds] == [b.id]
    assert builds[0].change.final.startswith("/srv/agroguia/versions/0/")
    # current is not touched: no switch, no stop, no restart, the site's upstream and nginx server unchanged.
    assert not {"switch", "stop", "restart", "app"} & {s.kind for s in p.steps}
    assert not [s for s in p.steps if s.kind == "config" and "pinned-agroguia.conf" in s.target
                or "upstream" in s.target]
    account = steps_of(p, "preview-account")
    assert [(s.change.user, s.change.privileges, s.change.database) for s in account] == [
        ("agroguia_pv_try_b", "SELECT", "agroguia\\_v0")]
    assert not steps_of(p, "database") and not steps_of(p, "preview-migrate")
    secrets = steps_of(p, "secrets")
    assert secrets and secrets[0].change.generate == ("PINNED_PREVIEW_TRY_B_DB_PASSWORD",) and secrets[0].sensitive
    start = steps_of(p, "preview-start")[0]
    assert start.change.service_unit == "agroguia-pv-try-b.service" and "http://10.0.0.5:8081/" in start.reason
    nginx = next(s for s in p.steps if s.target == pv.nginx_conf("agroguia", "try-b"))
    assert "listen 8081;" in nginx.change.content and "pv-try-b.sock" in nginx.change.content
    service = next(s for s in p.steps if s.target == pv.unit_file("agroguia", "try-b", "service"))
    assert "PINNED_PREVIEW_DB_NAME=agroguia_v0" in service.change.content
    assert f"/srv/agroguia/versions/0/{b.id}" in service.change.content
    after = apply_plan(p, a, d)
    assert plan(d, after).empty  # converges
    # `database: write` gives the same account ALL, and nothing else moves.
    dw = with_previews(desired("A"), {"try-b": ("B", {"port": 8081, "database": "write"})})
    changed = plan(dw, after)
    assert [(s.kind, s.change.privileges) for s in changed.steps if s.kind == "preview-account"] == [
        ("preview-account", "ALL")]
    assert {s.kind for s in changed.steps} <= {"preview-account", "config", "preview-start"}


def test_a_preview_with_new_migrations_gets_its_own_copied_database_and_schema_version():
    a = converge(desired("A"), EMPTY)
    d = with_previews(desired("A"), {"mig": ("S1", {"host": True})}, ["shop.example"])
    p = plan(d, a)
    db = steps_of(p, "database")
    assert [(s.change.database, s.change.copy_from) for s in db] == [("agroguia_pv_mig", "agroguia_v0")]
    assert "marked as a preview" in db[0].reason
    build = steps_of(p, "release")[-1]
    assert build.change.release_id == RELEASES["S1"].id and "/versions/1/" in build.change.final
    assert [s.change.database for s in steps_of(p, "preview-migrate")] == ["agroguia_pv_mig"]
    account = steps_of(p, "preview-account")[0]
    assert (account.change.privileges, account.change.database) == ("ALL", "agroguia\\_pv\\_mig")
    nginx = next(s for s in p.steps if s.target == pv.nginx_conf("agroguia", "mig"))
    assert "server_name mig.shop.example;" in nginx.change.content and "listen 80;" in nginx.change.content
    assert not {"switch", "schema", "migrate"} & {s.kind for s in p.steps}
    after = apply_plan(p, a, d)
    assert plan(d, after).empty

    # Promote: pin S1. Not rebuilt; its schema version's database is a fresh copy (said in the plan); the
    # preview (still declared) now shares that database, and its own copy is dropped.
    promoted = with_previews(desired("S1"), {"mig": ("S1", {"host": True})}, ["shop.example"])
    p2 = plan(promoted, after)
    assert not steps_of(p2, "release") and not steps_of(p2, "venv")
    assert [(s.change.database, s.change.copy_from) for s in steps_of(p2, "database")] == [("agroguia_v1",
                                                                                              "agroguia_v0")]
    assert any("not rebuilt" in w and "fresh copy of agroguia_v0" in w for w in p2.warnings)
    assert [s.change.database for s in steps_of(p2, "preview-drop")] == ["agroguia_pv_mig"]
    assert steps_of(p2, "switch")
    assert plan(promoted, apply_plan(p2, after, promoted)).empty


def test_removing_a_preview_plans_minus_lines_for_its_units_server_account_and_database():
    a = converge(desired("A"), EMPTY)
    d = with_previews(desired("A"), {"one": ("B", {"port": 8081}), "two": ("S1", {"port": 8082})})
    on = converge(d, a)
    p = plan(desired("A"), on)
    removes = steps_of(p, "preview-remove")
    assert sorted(s.change.service_unit for s in removes) == ["agroguia-pv-one.service", "agroguia-pv-two.service"]
    assert all(s.action == "remove" for s in removes)
    assert pv.nginx_conf("agroguia", "one") in next(s for s in removes if "one" in s.target).change.files
    drops = {s.target: s.change for s in steps_of(p, "preview-drop")}
    assert drops["agroguia_pv_one"].database == "" and drops["agroguia_pv_two"].database == "agroguia_pv_two"
    assert drops["agroguia_pv_one"].accounts == ("agroguia_pv_one@localhost",)
    # Their passwords leave the secrets file; the current release is not restarted for it.
    secrets = steps_of(p, "secrets")
    assert set(secrets[0].change.drop) == {"PINNED_PREVIEW_ONE_DB_PASSWORD", "PINNED_PREVIEW_TWO_DB_PASSWORD"}
    assert not steps_of(p, "restart") and not steps_of(p, "stop") and not steps_of(p, "switch")
    # Their releases are kept while they run: retention never prunes a preview's release.
    assert not steps_of(plan(replace(d, state=d.state.model_copy(update={"keep_releases": 1})), on), "prune")
    assert plan(desired("A"), apply_plan(p, on, desired("A"))).empty


def test_a_new_preview_does_not_restart_current():
    d0 = desired("A")
    a = converge(d0, EMPTY)
    d = with_previews(d0, {"x": ("B", {"port": 8081})})
    assert not steps_of(plan(d, a), "restart")
    on = converge(d, a)
    assert not steps_of(plan(d, on), "restart") and plan(d, on).empty


# ------------------------------------------------------------------ pinned preview add/remove (text edits)

from pinned import preview_edit  # noqa: E402

COMMENTED = ("# production of the shop\napp: shop  # the name\nrepository: .\nrelease: abcdef1  # pinned\n"
             "django: {settings: shop.settings}\n")


def test_preview_add_and_remove_keep_comments_and_layout():
    one = preview_edit.add(COMMENTED, "try-b", {"release": "1234567", "port": 8081})
    assert one.startswith(COMMENTED) and one.endswith('previews:\n  try-b: {release: "1234567", port: 8081}\n')
    assert parse_state(one).previews["try-b"].release == "1234567"  # quoted: digits stay a string
    two = preview_edit.add(one.replace("  try-b:", "  # the next release\n  try-b:"), "mig",
                           {"release": "abcdef2", "port": 8082, "database": "write"})
    assert "  # the next release\n  try-b:" in two and parse_state(two).previews["mig"].database == "write"
    again = preview_edit.add(two, "try-b", {"release": "abcdef3", "port": 8083})  # replaces its line in place
    assert again.index("try-b") < again.index("mig") and parse_state(again).previews["try-b"].port == 8083
    gone = preview_edit.remove(preview_edit.remove(again, "try-b"), "mig")
    assert gone.startswith(COMMENTED) and "previews: {}" in gone and not parse_state(gone).previews
    assert preview_edit.add(gone, "x", {"release": "abcdef1", "host": True}).count("previews:") == 1


def test_preview_add_quotes_a_name_yaml_would_read_as_no_text():
    added = preview_edit.add(COMMENTED, "no", {"release": "1234567", "port": 8081})
    assert '  "no": {release: "1234567", port: 8081}' in added and list(parse_state(added).previews) == ["no"]
    again = preview_edit.add(added, "no", {"release": "abcdef3", "port": 8082})  # finds its quoted line
    assert again.count('"no":') == 1 and parse_state(again).previews["no"].port == 8082
    assert not parse_state(preview_edit.remove(again, "no")).previews


@pytest.mark.parametrize("text", [
    COMMENTED + "previews: {a: {release: abcdef2, port: 8081}}\n",  # flow style with entries
    COMMENTED + "previews:\n  a:\n    release: abcdef2\n  b: &x {release: abcdef2, port: 1}\n  c: *x\n",
])
def test_preview_add_refuses_a_shape_it_cannot_edit_safely(text):
    with pytest.raises(preview_edit.EditError, match="by hand"):
        preview_edit.add(text, "b", {"release": "abcdef1", "port": 8082})


def test_preview_remove_of_a_multi_line_entry_and_of_a_missing_one():
    text = (COMMENTED + "previews:\n  a:\n    release: abcdef2\n    port: 8081  # eighty-eighty-one\n"
            "  b: {release: abcdef3, port: 8082}\n")
    out = preview_edit.remove(text, "a")
    assert out == COMMENTED + "previews:\n  b: {release: abcdef3, port: 8082}\n"
    with pytest.raises(preview_edit.EditError, match="no preview 'zz'"):
        preview_edit.remove(out, "zz")


def test_preview_sql_quotes_names_and_reads_the_password_from_the_secrets_file(tmp_path):
    import runpy
    import sys as _sys

    secrets = tmp_path / "secrets.env"
    secrets.write_text("DB_PASSWORD=main\nPINNED_PREVIEW_A_DB_PASSWORD=pa'ss\\word\n")
    script = str(pv.Path(__file__).resolve().parent.parent / "operations" / "remote" / "preview_sql.py")
    module = runpy.run_path(script)
    sql = module["account_sql"](str(secrets), "shop_pv_a", "10.0.0.1", "PINNED_PREVIEW_A_DB_PASSWORD", "SELECT",
                                "shop\\_v0")
    assert sql[0] == "CREATE USER IF NOT EXISTS 'shop_pv_a'@'10.0.0.1' IDENTIFIED BY 'pa\\'ss\\\\word';"
    assert sql[-1] == "GRANT SELECT ON `shop\\_v0`.* TO 'shop_pv_a'@'10.0.0.1';"
    assert "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'shop_pv_a'@'10.0.0.1';" in sql
    assert "main" not in "".join(sql)
    with pytest.raises(SystemExit, match="SELECT or ALL"):
        module["account_sql"](str(secrets), "u", "h", "PINNED_PREVIEW_A_DB_PASSWORD", "DROP", "x")
    assert module["drop_sql"]("shop_pv_a", ["shop_pv_a@localhost"]) == [
        "DROP USER IF EXISTS 'shop_pv_a'@'localhost';", "DROP DATABASE IF EXISTS `shop_pv_a`;"]
    assert _sys.argv  # runpy left the interpreter alone


def test_a_release_with_other_migrations_than_a_previews_never_lands_in_the_previews_schema_version():
    from pinned.state.source import Release

    a = converge(desired("A"), EMPTY)
    d = with_previews(desired("A"), {"mig": ("S1", {"port": 8081})})
    on = converge(d, a)
    s1 = on["server"].releases[RELEASES["S1"].id].schema
    other = Release("f" * 40, 1_700_003_000, "fp9", "req0", ("crops/migrations/0009_other.py",), "Django\n")
    RELEASES["X"] = other
    try:
        pinned = with_previews(desired("X"), {"mig": ("S1", {"port": 8081})})
        build = next(s for s in plan(pinned, on).steps if s.kind == "release")
        assert f"/versions/{s1}/" not in build.change.final and f"/versions/{s1 + 1}/" in build.change.final
    finally:
        del RELEASES["X"]


# ------------------------------------------------------------------ promote: keep the preview's data or not


def test_promoting_a_preview_with_its_own_database_says_fresh_copy_by_default():
    a = converge(desired("A"), EMPTY)
    on = converge(with_previews(desired("A"), {"mig": ("S1", {"port": 8081})}), a)
    p = plan(with_previews(desired("S1"), {"mig": ("S1", {"port": 8081})}), on)
    made = steps_of(p, "database")
    assert [(s.change.database, s.change.copy_from, s.change.adopt_from) for s in made] == [
        ("agroguia_v1", "agroguia_v0", "")]
    assert made[0].reason.startswith("fresh copy of agroguia_v0") and "keep-data" in made[0].reason
    assert steps_of(p, "migrate") and steps_of(p, "write-freeze")  # migrated again, under the write freeze
    assert [s.change.database for s in steps_of(p, "preview-drop")] == ["agroguia_pv_mig"]
    assert not any("NOT in" in w for w in p.warnings)


def test_promoting_with_keep_data_adopts_the_previews_database_without_copy_migration_or_freeze():
    spec = {"mig": ("S1", {"port": 8081, "promote": "keep-data"})}
    a = converge(desired("A"), EMPTY)
    on = converge(with_previews(desired("A"), spec), a)  # keep-data changes nothing while it is a preview
    assert on == converge(with_previews(desired("A"), {"mig": ("S1", {"port": 8081})}), a)
    promoted = with_previews(desired("S1"), spec)
    p = plan(promoted, on)
    made = steps_of(p, "database")
    assert [(s.change.database, s.change.copy_from, s.change.adopt_from) for s in made] == [
        ("agroguia_v1", "", "agroguia_pv_mig")]
    assert "adopted from preview mig" in made[0].reason and "data kept" in made[0].reason
    kinds = {s.kind for s in p.steps}
    assert not {"migrate", "preview-migrate", "write-freeze", "db-freeze", "release", "venv"} & kinds, kinds
    assert not steps_of(p, "preview-drop")  # its database becomes agroguia_v1: not dropped
    warning = next(w for w in p.warnings if "keeps its data" in w)
    assert "writes made to agroguia_v0 since the preview's copy was made are NOT in agroguia_v1" in warning
    assert not any("goes live on a fresh copy" in w or w.startswith("write freeze") for w in p.warnings), p.warnings
    # The app's accounts get agroguia_v1 (by name), the preview's account now reads it; then it converges.
    assert any("agroguia\\_v1" in g for s in steps_of(p, "db-user") for g in s.change.grant)
    assert [s.change.database for s in steps_of(p, "preview-account")] == ["agroguia\\_v1"]
    assert steps_of(p, "switch")
    after = apply_plan(p, on, promoted)
    assert "agroguia_pv_mig" not in after["server"].previews["databases"] and "agroguia_v1" in after["server"].databases
    assert plan(promoted, after).empty


def test_keep_data_after_a_run_that_stopped_before_the_switch_goes_live_on_the_adopted_database():
    spec = {"mig": ("S1", {"port": 8081, "promote": "keep-data"})}
    on = converge(with_previews(desired("A"), spec), converge(desired("A"), EMPTY))
    promoted = with_previews(desired("S1"), spec)
    p = plan(promoted, on)
    early = {"accounts", "secrets", "share", "system", "prepare", "database", "migrate", "schema"}
    stopped = apply_plan(replace(p, steps=tuple(s for s in p.steps if s.phase in early)), on, promoted)
    again = plan(promoted, stopped)
    assert not again.blocked and not steps_of(again, "database") and not steps_of(again, "migrate")
    assert any("adopted from preview mig's database by a run that did not finish" in w for w in again.warnings)
    assert steps_of(again, "switch")


def test_keep_data_on_a_preview_that_has_no_database_of_its_own_blocks_the_plan():
    # Pinned together with the preview's first deploy: it never had a database to keep.
    p = plan(with_previews(desired("S1"), {"mig": ("S1", {"port": 8081, "promote": "keep-data"})}),
             converge(desired("A"), EMPTY))
    assert not p.steps and len(p.blocked) == 1
    assert p.blocked[0].startswith("field 'previews.mig.promote': keep-data, but the preview has no database of "
                                   "its own (agroguia_pv_mig)")


def test_keep_data_where_it_makes_no_sense_is_refused_naming_the_field():
    a, b, s1 = RELEASES["A"], RELEASES["B"], RELEASES["S1"]

    def state(previews):
        text = BASE + "previews:\n" + "".join(f"  {n}: {{release: abcdef{i}, port: {8081 + i}, promote: keep-data}}\n"
                                              for i, n in enumerate(previews))
        return parse_state(text, "prod.yaml")

    # B has A's migrations: its preview uses the pinned schema's database, it has none of its own.
    refused = pv.keep_data_refusal(state(["try-b"]), a, {"try-b": b})
    assert refused.startswith("field 'previews.try-b.promote': keep-data, but release ")
    assert "remove `promote`" in refused
    refused = pv.keep_data_refusal(state(["one", "two"]), a, {"one": s1, "two": s1})
    assert refused.startswith("field 'previews.two.promote'") and "only one database" in refused
    assert pv.keep_data_refusal(state(["mig"]), a, {"mig": s1}) is None
    assert pv.keep_data_refusal(state(["mig"]), s1, {"mig": s1}) is None  # promoted: its release is the pinned one
    with pytest.raises(StateFileError, match=r"prod.yaml: .*previews.mig.promote keep-data needs schema_change: copy"):
        parse_state(BASE + "schema_change: in_place\npreviews: {mig: {release: abcdef2, port: 8081, "
                    "promote: keep-data}}\n", "prod.yaml")
    with pytest.raises(StateFileError, match="promote"):
        parse_state(BASE + "previews: {mig: {release: abcdef2, port: 8081, promote: keep}}\n", "prod.yaml")
    # `pinned preview add` passes every field, defaults included: only the others are written.
    for promote in ("fresh-copy", "keep-data"):
        entry = {"release": "abcdef2", "port": 8081, "host": False, "database": "read", "promote": promote}
        text = preview_edit.add(COMMENTED, "mig", entry)
        assert parse_state(text).previews["mig"].promote == promote
        assert ("promote: keep-data" in text) == (promote == "keep-data")
