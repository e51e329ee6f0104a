"""The app's own configuration without hosts: `env:` and `secrets:` in the state file, how they are planned
(blocked without a value, a restart for a change, a removed secret undone), and the env file's quoting
(what pinned writes is what systemd and pinned's settings module read back)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_plan import EMPTY, desired

from conftest import ROOT
from pinned.state.desired import HostSpec, env_file, env_quote
from pinned.state.model import ENV_VALUE, PINNED_ENV_NAMES, StateFileError, parse_state
from pinned.state.observed import HostObserved
from pinned.state.plan import BLOCKED, plan
from pinned.state.render import plan_json, render_text
from simulate import apply_plan

BASE = "app: shop\nrepository: x\nrelease: abcdef0\ndjango: {settings: shop.settings}\n"


def state_error(extra: str) -> str:
    with pytest.raises(StateFileError) as exc:
        parse_state(BASE + extra, "prod.yaml")
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("extra, field, says", [
    ("env: {'1X': a}", "env", "not a variable name"),
    ("env: {'A-B': a}", "env", "not a variable name"),
    ("env: {'A B': a}", "env", "not a variable name"),
    ("env: {SECRET_KEY: a}", "env", "pinned's own"),
    ("env: {DJANGO_SETTINGS_MODULE: a}", "env", "pinned's own"),
    ("env: {PINNED_X: a}", "env", "PINNED_"),
    ("env: {A: 1}", "env.A", "valid string"),
    ("env: {A: \"x\\ny\"}", "env.A", "not allowed"),
    ("secrets: [DB_PASSWORD]", "secrets", "pinned's own"),
    ("secrets: [DB_HOST]", "secrets", "pinned's own"),
    ("secrets: ['x/y']", "secrets", "not a variable name"),
    ("secrets: ['..']", "secrets", "not a variable name"),
    ("secrets: [A, A]", "secrets", "listed once"),
    ("env: {A: x}\nsecrets: [A]", "secrets", "both in env and in secrets"),
])
def test_bad_names_stop_in_one_line_naming_the_field(extra, field, says):
    message = state_error(extra)
    assert message.startswith(f"prod.yaml: field '{field}'") and says in message, message


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20))
@example("':0")  # once written as `["":0"]`: YAML read it as a mapping (now JSON-quoted: one string)
def test_any_name_is_either_a_variable_name_of_the_apps_or_refused(name):
    text = BASE + f"secrets: [{json.dumps(name)}]\n"  # a JSON string is a YAML double-quoted scalar
    try:
        state = parse_state(text)
    except StateFileError as exc:
        assert re.search(r"field 'secrets(\.0)?'", str(exc)) or "not valid YAML" in str(exc), str(exc)
        return
    (got,) = state.secrets
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", got) and got not in PINNED_ENV_NAMES
    assert not got.upper().startswith("PINNED_")


def read_env_file_function():
    """pinned's settings module's reader (templates/settings.py.j2), as it runs in a release."""
    text = (ROOT / "templates" / "settings.py.j2").read_text()
    source = text[text.index("def _read_env_file"):text.index("# The app's configuration reaches it")]
    scope: dict = {}
    exec(source, scope)
    return scope["_read_env_file"]


@settings(max_examples=300, deadline=None)
@given(st.from_regex(ENV_VALUE, fullmatch=True))
def test_a_value_written_to_the_env_file_reads_back_exactly(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("env") / "env"
    path.write_text(f"# comment\nNAME={env_quote(value)}\nOTHER=plain\n", encoding="utf-8")
    assert read_env_file_function()(str(path)) == {"NAME": value, "OTHER": "plain"}


def with_secret_values(o: HostObserved, **fingerprints: str) -> HostObserved:
    sec = dict(o.secrets)
    fps = {**sec.get("fingerprints", {}), **fingerprints}
    sec.update(fingerprints=fps, keys=sorted(fps), digest="secrets:" + ",".join(f"{k}={v}" for k, v in
                                                                               sorted(fps.items())))
    return replace(o, secrets=sec)


def converged(d, observed):
    observed = apply_plan(plan(d, observed), observed, d)
    assert plan(d, observed).steps == ()
    return observed


def test_a_declared_secret_with_no_value_blocks_the_plan_naming_it():
    d = desired("A", secrets=["API_TOKEN"])
    p = plan(d, EMPTY)
    assert p.status == BLOCKED and p.steps == ()
    assert p.blocked == ("secret API_TOKEN has no value on server: set it with `pinned --env test secret set "
                         "API_TOKEN` (reads it from standard input)",)
    observed = {"server": with_secret_values(HostObserved(secrets={"mode": "0600", "owner": "root", "group": "root"}),
                                             API_TOKEN="f1")}
    p = plan(d, observed)
    assert p.status != BLOCKED
    secrets_step = next(s for s in p.steps if s.kind == "secrets")
    assert secrets_step.change.drop == () and secrets_step.sensitive


def test_a_changed_secret_restarts_the_current_release_and_shows_only_its_name():
    d = desired("A", secrets=["API_TOKEN"], env={"GREETING": "hi"})
    observed = {"server": with_secret_values(HostObserved(secrets={"mode": "0600", "owner": "root", "group": "root"}),
                                             API_TOKEN="f1")}
    observed = converged(d, observed)
    observed = {"server": with_secret_values(observed["server"], API_TOKEN="f2")}
    p = plan(d, observed)
    assert [(s.kind, s.action) for s in p.steps] == [("restart", "change")]
    assert p.steps[0].reason == "secrets (sensitive): API_TOKEN changed"
    text = render_text(p, "test.yaml")
    assert "~ restart agroguia@" in text and "secrets (sensitive): API_TOKEN changed" in text
    assert "f2" not in text and "f2" not in str(plan_json(p, "test.yaml"))
    converged(d, observed)


def test_a_changed_env_shows_its_diff_and_restarts():
    d = desired("A", env={"GREETING": "hi", "MODE": "a b"})
    observed = converged(d, EMPTY)
    d2 = replace(d, state=d.state.model_copy(update={"env": {"GREETING": "bonjour"}}))
    p = plan(d2, observed)
    kinds = [(s.kind, s.target) for s in p.steps]
    assert kinds[0] == ("config", "/etc/pinned/agroguia/env") and kinds[1][0] == "restart"
    assert '+GREETING="bonjour"' in p.steps[0].diff and '-MODE="a b"' in p.steps[0].diff
    assert p.steps[1].reason == "env: GREETING changed, MODE removed"
    assert env_file(d2).mode == "0640" and env_file(d2).group == "agroguia"
    converged(d2, observed)


def test_a_secret_no_longer_declared_is_removed_and_the_release_restarted():
    hosts = (HostSpec("web1", "10.0.0.11", ("web",)), HostSpec("web2", "10.0.0.12", ("web",)),
             HostSpec("db", "10.0.0.13", ("db",)))
    d = replace(desired("A", secrets=["API_TOKEN", "OLD"]), hosts=hosts)
    observed = {h.name: HostObserved() for h in hosts}
    observed["db"] = with_secret_values(HostObserved(secrets={"mode": "0600", "owner": "root", "group": "root"}),
                                        API_TOKEN="f1", OLD="o1")
    observed = converged(d, observed)
    # A new value on the db host: read once, copied to each web host (naming what differs), each restarted.
    observed["db"] = with_secret_values(observed["db"], API_TOKEN="f2")
    p = plan(d, observed)
    said = {(s.host, s.kind): s.reason for s in p.steps}
    assert set(said) == {("db", "secrets-read"), ("web1", "secrets-copy"), ("web2", "secrets-copy"),
                         ("web1", "restart"), ("web2", "restart")}
    assert said[("web1", "secrets-copy")] == "API_TOKEN changed: copied from db"
    assert said[("web2", "restart")] == "secrets (sensitive): API_TOKEN changed"
    observed = converged(d, observed)
    d2 = replace(d, state=d.state.model_copy(update={"secrets": ["API_TOKEN"]}))
    p = plan(d2, observed)
    drop = next(s for s in p.steps if s.kind == "secrets")
    assert drop.action == "remove" and drop.change.drop == ("OLD",) and "OLD no longer declared" in drop.reason
    assert {(s.host, s.kind) for s in p.steps} == {("db", "secrets"), ("db", "secrets-read"), ("web1", "secrets-copy"),
                                                   ("web2", "secrets-copy"), ("web1", "restart"), ("web2", "restart")}
    assert next(s for s in p.steps if s.kind == "restart").reason == "secrets (sensitive): OLD removed"
    observed = converged(d2, observed)
    assert "OLD" not in observed["web1"].secret_fingerprints


def test_a_release_started_by_an_older_pinned_is_restarted_once():
    d = desired("A")
    observed = converged(d, EMPTY)
    observed = {"server": replace(observed["server"], loaded=None)}
    p = plan(d, observed)
    assert [s.kind for s in p.steps] == ["restart"] and "not recorded" in p.steps[0].reason
    converged(d, observed)


def test_a_new_release_starts_with_the_new_values_and_needs_no_restart():
    d = desired("A", secrets=["API_TOKEN"])
    observed = {"server": with_secret_values(HostObserved(secrets={"mode": "0600", "owner": "root", "group": "root"}),
                                             API_TOKEN="f1")}
    observed = converged(d, observed)
    observed = {"server": with_secret_values(observed["server"], API_TOKEN="f2")}
    d_b = replace(desired("B", secrets=["API_TOKEN"]))
    kinds = [s.kind for s in plan(d_b, observed).steps]
    assert "app" in kinds and "restart" not in kinds
    converged(d_b, observed)


def test_the_observe_request_reads_the_env_file_and_the_loaded_record():
    """Without them in the request, every plan would see the env file missing and the release never recorded."""
    import json

    from pinned.engine import request_for

    d = desired("A", env={"A": "b"})
    request = json.loads(request_for(d))
    assert "/etc/pinned/agroguia/env" in request["files"]
    assert request["loaded"] == "/etc/pinned/agroguia/loaded.json"


@pytest.mark.parametrize("extra, field, says", [
    ("shared: [a/b]", "shared", "one folder name"),
    ("shared: ['..']", "shared", "one folder name"),
    ("shared: ['.hidden']", "shared", "one folder name"),
    ("shared: [media, media]", "shared", "listed once"),
    ("shared: [a-b, A_B]", "shared", "listed once"),
    ("site: {media_url: /media/}", "shared", "served from the shared folder `media`"),
    ("shared: [media]\nsite: {media_url: /static/}", "site", "must differ from static_url"),
    ("site: {media_url: media}", "site.media_url", "not allowed"),
    ("site: {max_body: 5g}", "site.max_body", "not allowed"),
    ("site: {max_body: '0'}", "site.max_body", "not allowed"),
])
def test_bad_shared_folders_and_media_settings_stop_in_one_line(extra, field, says):
    message = state_error(extra)
    assert message.startswith(f"prod.yaml: field '{field}'") and says in message, message


def media_desired(tag: str):
    from pinned.state.model import Site

    d = desired(tag, shared=["media", "exports"])
    site = Site(health_url="/health/", media_url="/media/", max_body="64m")
    return replace(d, state=d.state.model_copy(update={"site": site}))


def test_shared_folders_are_the_apps_writable_and_served_the_same_for_every_release():
    from pinned.state.desired import site_files

    d = media_desired("A")
    p = plan(d, EMPTY)
    dirs = {s.target: s.change for s in p.steps if s.kind == "directory"}
    assert (dirs["/srv/agroguia/shared/media"].owner, dirs["/srv/agroguia/shared/media"].mode) == ("agroguia", "0755")
    assert dirs["/srv/agroguia/shared/exports"].owner == "agroguia"
    assert dirs["/srv/agroguia/shared"].owner == "root"
    files = {f.path: f.content for f in site_files(d)}
    unit = files["/etc/systemd/system/agroguia@.service"]
    assert "ReadWritePaths=/srv/agroguia/shared/media\nReadWritePaths=/srv/agroguia/shared/exports\n" in unit
    site = files["/etc/nginx/conf.d/pinned-agroguia.conf"]
    assert "client_max_body_size 64m;" in site and "location /media/ {" in site
    assert "alias /srv/agroguia/shared/media/;" in site and 'X-Content-Type-Options "nosniff" always' in site
    assert "sandbox" in site
    env = env_file(d).content
    assert 'PINNED_MEDIA_ROOT="/srv/agroguia/shared/media"' in env and 'PINNED_SHARED_EXPORTS=' in env
    observed = converged(d, EMPTY)
    # Another release: the folders stay as they are (no step touches them), nothing pruned there.
    d_b = media_desired("B")
    assert not [s for s in plan(d_b, observed).steps if "/shared" in s.target]
    converged(d_b, observed)


def test_removing_a_shared_folder_takes_its_write_access_away_and_keeps_its_files():
    d = desired("A", shared=["media", "exports"])
    observed = converged(d, EMPTY)
    d2 = desired("A", shared=["media"])
    p = plan(d2, observed)
    assert {s.kind for s in p.steps} == {"config", "restart"}  # unit template, env file; no folder removed
    assert "env: PINNED_SHARED_EXPORTS removed" in next(s for s in p.steps if s.kind == "restart").reason
    assert not [s for s in p.steps if s.action == "remove"]
    converged(d2, observed)


def test_several_web_hosts_are_warned_that_shared_folders_are_local():
    hosts = (HostSpec("web1", "10.0.0.11", ("web",)), HostSpec("web2", "10.0.0.12", ("web",)),
             HostSpec("db", "10.0.0.13", ("db",)))
    d = replace(desired("A", shared=["media"]), hosts=hosts)
    p = plan(d, {h.name: HostObserved() for h in hosts})
    assert any("local to each web host" in w and "shared storage" in w for w in p.warnings)
    assert not any("local to each web host" in w for w in plan(desired("A", shared=["media"]), EMPTY).warnings)


def test_new_server_names_restart_the_current_release_and_need_no_new_one():
    d = desired("A")
    observed = converged(d, EMPTY)
    named = replace(d, state=d.state.model_copy(update={"site": d.state.site.model_copy(
        update={"server_names": ["shop.example", "www.shop.example"]})}))
    p = plan(named, observed)
    kinds = {s.kind for s in p.steps}
    assert "restart" in kinds and not kinds & {"release", "venv", "migrate"}, kinds
    assert "env: PINNED_SERVER_NAMES changed" in next(s for s in p.steps if s.kind == "restart").reason
    assert 'PINNED_SERVER_NAMES="shop.example www.shop.example"' in env_file(named).content
    # the release's settings read them at run time; with none, the host's address
    settings = next(s for s in plan(d, EMPTY).steps if s.kind == "release").change.settings
    assert 'if "PINNED_SERVER_NAMES" in os.environ:' in settings
    assert 'os.environ["PINNED_SERVER_NAMES"].split() or ["10.0.0.5", "localhost"]' in settings
