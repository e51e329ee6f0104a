"""End to end, 4 web hosts + 1 db host: rolling out host by host (`rollout:`).

Release H's health check passes but its main page answers 500. Rolled out under load, the canary switches,
its watch sees the 5xx answers in nginx's log and switches it back to A (still running), and the run stops:
the other three web hosts never serve H and drop no request. Then B rolls out whole: the canary first,
watched, then the others in batches. Last, previews on the same hosts: A (`host: true`, read-only) and C (a
port, its own database) beside B on all four web hosts, then removed from every host."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import Env, failure_summary, http_get
from load import Load

pytestmark = pytest.mark.sandbox
WEBS, DB = ["rw1", "rw2", "rw3", "rw4"], "rdb"
ROLLOUT = {"canary": 1, "batch": 2, "watch": "6s", "max_error_rate": "1%"}
SITE = "shop.test"  # a server name, so a preview can be `host: true` (try-a.shop.test) in the last test
PREVIEW = f"try-a.{SITE}"


@pytest.fixture(scope="module")
def env(sandbox, commits, tmp_path_factory):
    sandbox.hosts([(w, ("web",)) for w in WEBS] + [(DB, ("db",))])
    env = Env("roll4", tmp_path_factory.mktemp("state"), [*WEBS, DB], release=commits["A"]["commit"],
              rollout=ROLLOUT, site={"health_url": "/health/", "server_names": [SITE]})
    env.deploy()
    return env


def rid(commits, tag):
    return f"{commits[tag]['time']}-{commits[tag]['commit'][:12]}"


def switches(sandbox, host) -> list[tuple[str, str, str]]:
    """(time, from, to) of each switch in the host's history."""
    out = sandbox.ssh(host, "cat /srv/agroguia/history.log").stdout
    return re.findall(r"^(\S+) switch from=(\S+) to=(\S+)", out, re.M)


def test_a_canary_that_answers_500_switches_back_and_no_other_host_moves(env, sandbox, commits):
    a, h = rid(commits, "A"), rid(commits, "H")
    env.pinned("pin", "H")
    shown = env.pinned("plan").stdout
    assert re.search(r"\+ watch agroguia@\S+\s+\(canary: 6 s", shown), shown
    assert "rollout batch 1 of 2" in shown and "rollout batch 2 of 2" in shown
    before = {w: switches(sandbox, w) for w in WEBS}
    loads = {w: Load(f"http://{sandbox.booted[w].address}/", clients=3, max_duration=600, host_header=SITE)
             for w in WEBS}
    for load in loads.values():
        load.__enter__()
    try:
        time.sleep(1)
        deploy = env.deploy(check=False)
        time.sleep(1)
    finally:
        for load in loads.values():
            load.__exit__(None, None, None)
    out = deploy.stdout + deploy.stderr
    # the fault happened: the canary served H and its page answered 500
    assert deploy.returncode != 0, failure_summary(deploy)
    assert loads["rw1"].statuses.get(500, 0) > 0, loads["rw1"].report()
    assert "canary failed" in out and f"switched back to release {a}" in out, failure_summary(deploy)
    assert [(frm, to) for _, frm, to in switches(sandbox, "rw1")[len(before["rw1"]):]] == [(a, h), (h, a)]
    # the canary serves A again; the others never moved and dropped nothing
    for w in WEBS:
        assert sandbox.ssh(w, "readlink /srv/agroguia/current").stdout.strip().endswith(a), w
        assert loads[w].final_release == "A", (w, loads[w].report())
    for w in WEBS[1:]:
        assert switches(sandbox, w) == before[w], w
        load = loads[w]
        assert load.non_2xx == 0 and load.errors == 0 and set(load.per_release) == {"A"}, (w, load.report())
    # the plan says where things stand and offers the rollout again
    again = env.pinned("plan").stdout
    assert f"+ watch agroguia@{h}" in again


def test_a_good_release_rolls_out_canary_first_then_in_batches(env, sandbox, commits):
    b = rid(commits, "B")
    env.pinned("pin", "B")
    deploy = env.deploy()
    out = deploy.stdout + deploy.stderr
    assert f"Starting operation: + watch agroguia@{b}" in out, failure_summary(deploy)
    when = {w: switches(sandbox, w)[-1] for w in WEBS}
    assert all(to == b for _, _, to in when.values()), when
    # rw1 first, then at least its watch later rw2 and rw3 (batch 1), then rw4 (batch 2)
    t = {w: time.mktime(time.strptime(when[w][0], "%Y-%m-%dT%H:%M:%SZ")) for w in WEBS}
    assert t["rw2"] - t["rw1"] >= 6 and t["rw3"] - t["rw1"] >= 6, when
    assert max(t["rw2"], t["rw3"]) <= t["rw4"], when
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


# ------------------------------------------------------------------ previews on the same 4 + 1 hosts (issue 15)
# Last in the module: B is current on every web host (the test above), and `rollout:` stays declared (a
# preview never switches, so it never rolls out).


def get(url, host=SITE):
    return http_get(url, host_header=host)


def status(url):
    import urllib.error
    try:
        return get(url).status
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def post(url, text, host=SITE):
    import urllib.error
    import urllib.parse
    import urllib.request
    request = urllib.request.Request(url, data=urllib.parse.urlencode({"text": text}).encode(), headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def sql(sandbox, statement):
    return sandbox.ssh(DB, f"mysql -N -B -r -e \"{statement}\"").stdout


def test_previews_on_four_web_hosts_beside_current_then_removed_from_all(env, sandbox, commits):
    """A (current's schema: read-only on agroguia_v0) at try-a.shop.test (`host: true`, the site's port) and C
    (a migration: its own copied database, migrated once) at :8082 beside B on all four web hosts; `current`
    and its process untouched everywhere; removed, their units, servers, accounts, passwords and database are
    gone from every host. (Was test_previews_multi.py on 2 + 1 hosts of its own.)"""
    b = rid(commits, "B")
    unit = f"agroguia@{b}.service"
    before = {w: sandbox.ssh(w, f"readlink /srv/agroguia/current; cat /etc/nginx/pinned/agroguia-upstream.conf; "
                                f"systemctl show -p MainPID,ActiveEnterTimestamp {unit}").stdout for w in WEBS}
    assert all(b in text for text in before.values())
    env.pinned("preview", "add", "try-a", "A", "--host")
    env.pinned("preview", "add", "mig", "C", "--port", "8082")
    steps = json.loads(env.pinned("plan", "--json").stdout)["steps"]
    kinds = {s["kind"] for s in steps}
    assert not {"switch", "watch", "stop", "restart", "app", "write-freeze"} & kinds, kinds
    assert sorted(s["host"] for s in steps if s["kind"] == "preview-start") == sorted(WEBS * 2)
    assert [s["host"] for s in steps if s["kind"] == "preview-migrate"] == [WEBS[0]]  # once, on the first
    assert [(s["host"], s["target"]) for s in steps if s["kind"] == "database"] == [(DB, "agroguia_pv_mig")]
    env.deploy()

    notes = "SELECT COUNT(*) FROM agroguia_v0.crops_note"
    count = sql(sandbox, notes)
    for w in WEBS:
        address = sandbox.booted[w].address
        assert "Release: A" in get(f"http://{address}/", PREVIEW).body, w
        assert "Release: C" in get(f"http://{address}:8082/").body, w
        assert "Release: B" in get(f"http://{address}/").body, w
        assert sandbox.ssh(w, f"readlink /srv/agroguia/current; cat /etc/nginx/pinned/agroguia-upstream.conf; "
                              f"systemctl show -p MainPID,ActiveEnterTimestamp {unit}").stdout == before[w], w
        keys = sandbox.ssh(w, "cut -d= -f1 /etc/pinned/agroguia/secrets.env").stdout.split()
        assert {"PINNED_PREVIEW_TRY_A_DB_PASSWORD", "PINNED_PREVIEW_MIG_DB_PASSWORD"} <= set(keys), w
        assert post(f"http://{address}/notes/", f"from {w} through try-a", PREVIEW) >= 500, w  # may only read
        assert post(f"http://{address}:8082/notes/", f"from {w} through mig") == 201, w  # its own database
    assert sql(sandbox, notes) == count
    addresses = sorted(sandbox.booted[w].address for w in WEBS)
    accounts = sql(sandbox, "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user LIKE 'agroguia\\\\_pv\\\\_%'")
    assert sorted(accounts.split()) == sorted([f"agroguia_pv_mig@{a}" for a in addresses]
                                              + [f"agroguia_pv_try_a@{a}" for a in addresses])
    for a in addresses:
        grants = sql(sandbox, f"SHOW GRANTS FOR 'agroguia_pv_try_a'@'{a}'")
        assert "GRANT SELECT ON `agroguia\\_v0`.*" in grants and "INSERT" not in grants, grants
    assert "variety" in sql(sandbox, "SHOW COLUMNS FROM agroguia_pv_mig.crops_crop")
    assert sorted(sql(sandbox, "SELECT text FROM agroguia_pv_mig.crops_note WHERE text LIKE '% through mig'"
                      ).splitlines()) == sorted(f"from {w} through mig" for w in WEBS)
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0

    env.pinned("preview", "remove", "try-a")
    env.pinned("preview", "remove", "mig")
    shown = env.pinned("plan").stdout
    assert shown.count("- preview-remove agroguia-pv-try-a.service") == 4
    assert shown.count("- preview-remove agroguia-pv-mig.service") == 4
    env.deploy()
    for w in WEBS:
        address = sandbox.booted[w].address
        # (systemd may list a removed unit as "not-found inactive" until it forgets it: that is no unit at all)
        left = sandbox.ssh(w, "ls /etc/systemd/system/agroguia-pv-* /etc/nginx/conf.d/pinned-agroguia.pv-* "
                              "2>/dev/null; systemctl list-units --all --plain --no-legend 'agroguia-pv-*'",
                           check=False).stdout.splitlines()
        assert not [line for line in left if line.split()[1:3] != ["not-found", "inactive"]], (w, left)
        assert "PINNED_PREVIEW" not in sandbox.ssh(w, "cut -d= -f1 /etc/pinned/agroguia/secrets.env").stdout, w
        assert status(f"http://{address}:8082/") is None, w  # nothing listens there any more
        assert "Release: B" in get(f"http://{address}/").body, w
        assert "Release: A" not in get(f"http://{address}/", PREVIEW).body, w  # the site's server: not its name
        assert sandbox.ssh(w, "readlink /srv/agroguia/current").stdout.strip().endswith(b), w
    assert not sql(sandbox, "SELECT user FROM mysql.user WHERE user LIKE 'agroguia\\\\_pv\\\\_%'").strip()
    assert "agroguia_pv_mig" not in sql(sandbox, "SHOW DATABASES").split()
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0
