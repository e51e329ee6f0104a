"""End to end on the multi-host topology (two web hosts and a db host): one database per schema version,
data carried forward by a verified copy, rollback across a schema change by a link switch, a failing
migration that changes nothing, and an app account confined to its own databases."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from conftest import Env, http_get

pytestmark = pytest.mark.sandbox
WEBS, DB = ["mweb1", "mweb2"], "mdb"


@pytest.fixture(scope="module")
def multi(sandbox, commits, tmp_path_factory):
    sandbox.hosts([(WEBS[0], ("web",)), (WEBS[1], ("web",)), (DB, ("db",))])
    env = Env("multi", tmp_path_factory.mktemp("state"), [*WEBS, DB], release=commits["A"]["commit"])
    env.deploy()
    return env


def pages(sandbox):
    return {w: http_get(f"http://{sandbox.booted[w].address}/") for w in WEBS}


def app_sql(sandbox, web, database, sql, *, fetch=True):
    """Run SQL from a web host as the app's account over the network, with PyMySQL (the app's venv)."""
    db_address = sandbox.booted[DB].address
    script = textwrap.dedent(f"""
        import json, pymysql
        pw = [l.split("=", 1)[1].strip() for l in open("/etc/pinned/agroguia/secrets.env")
              if l.startswith("DB_PASSWORD=")][0]
        try:
            c = pymysql.connect(host={db_address!r}, user="agroguia", password=pw, database={database!r} or None,
                                autocommit=True)
            cur = c.cursor()
            cur.execute({sql!r})
            print(json.dumps({{"rows": [list(map(str, r)) for r in cur.fetchall()]}}))
        except pymysql.err.MySQLError as e:
            print(json.dumps({{"error": e.args[0]}}))
    """)
    out = sandbox.ssh(web, f"/srv/agroguia/current/.venv/bin/python - <<'EOF'\n{script}\nEOF").stdout
    return json.loads(out.strip().splitlines()[-1])


def checksum(sandbox, database):
    tables = sandbox.ssh(DB, f"mysql -N -B -e \"SELECT table_name FROM information_schema.tables "
                             f"WHERE table_schema='{database}' ORDER BY 1\"").stdout.split()
    out = sandbox.ssh(DB, "mysql -N -B -e 'CHECKSUM TABLE " + ", ".join(f"{database}.{t}" for t in tables) + "'")
    return out.stdout


def test_schema_versions_across_hosts(multi, sandbox, commits):
    env = multi
    assert all(p.status == 200 and "Release: A" in p.body for p in pages(sandbox).values())
    # Rows written through the app's account from a web host, over the network.
    for name in ("Barley", "Chickpea"):
        assert "rows" in app_sql(sandbox, WEBS[1], "agroguia_v0", f"INSERT INTO crops_crop (name) VALUES ('{name}')")
    before_v0 = checksum(sandbox, "agroguia_v0")

    # C changes the schema: agroguia_v1 is a verified copy of agroguia_v0, then migrated once.
    env.write(release=commits["C"]["commit"])
    plan = env.pinned("plan").stdout
    assert re.search(r"\+ database agroguia_v1  \(copy of agroguia_v0: \d+ tables, ~\d+ rows; then migrate\)", plan)
    assert plan.count("~ migrate agroguia_v1") == 1 and "0003_crop_variety" in plan
    deploy = env.deploy("-vvv")  # -vvv: pyinfra shows what commands printed (the copy's check)
    assert re.search(r"copied agroguia_v0 into agroguia_v1: \d+ tables, \d+ rows, counts equal",
                     deploy.stdout + deploy.stderr)
    assert all("Release: C" in p.body and "<li>Barley" in p.body for p in pages(sandbox).values())
    v1 = sandbox.ssh(DB, "mysql -N -B -e 'SELECT name, variety FROM agroguia_v1.crops_crop ORDER BY name'").stdout
    assert [line.split("\t")[0] for line in v1.splitlines()] == ["Barley", "Chickpea", "Olive", "Tomato", "Wheat"]
    assert checksum(sandbox, "agroguia_v0") == before_v0  # the old database is untouched
    for web in WEBS:
        info = json.loads(sandbox.ssh(web, "cat /srv/agroguia/versions/1/schema.json").stdout)
        assert info["database"] == "agroguia_v1" and info["copied_from"] == 0 and info["migrated"]

    # Written while C is current: only in agroguia_v1.
    assert "rows" in app_sql(sandbox, WEBS[0], "agroguia_v1",
                             "INSERT INTO crops_crop (name, variety) VALUES ('Durum', 'Senatore Cappelli')")

    # Back to A: link switches only (A is still warm: keep_warm), with the data warning.
    env.write(release=commits["A"]["commit"])
    plan_a = json.loads(env.pinned("plan", "--json").stdout)
    assert sorted({s["kind"] for s in plan_a["steps"]}) == ["app", "switch", "warm"]
    assert {s["host"] for s in plan_a["steps"]} == set(WEBS)
    assert any("writes made to agroguia_v1 since it became current" in w and "agroguia_v0" in w
               for w in plan_a["warnings"])
    env.deploy()
    for page in pages(sandbox).values():
        assert "Release: A" in page.body and "<li>Barley</li>" in page.body and "Durum" not in page.body

    # Forward to C again: agroguia_v1 as it was left, no copy, no migration.
    env.write(release=commits["C"]["commit"])
    plan_c = json.loads(env.pinned("plan", "--json").stdout)
    assert sorted({s["kind"] for s in plan_c["steps"]}) == ["app", "switch", "warm"]
    assert any("returning to agroguia_v1 as it was left" in w for w in plan_c["warnings"])
    env.deploy()
    assert all("Durum" in p.body and "Release: C" in p.body for p in pages(sandbox).values())
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_failing_migration_changes_nothing(multi, sandbox, commits):
    env = multi
    env.write(release=commits["C"]["commit"])
    env.deploy()
    databases = sandbox.ssh(DB, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    env.write(release=commits["E"]["commit"])  # its migration raises
    failed = env.deploy(check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "migration 0004_broken fails on purpose" in output and "current is unchanged" in output
    for web in WEBS:
        assert sandbox.ssh(web, "readlink /srv/agroguia/current").stdout.startswith("versions/1/")
    assert all(p.status == 200 and "Release: C" in p.body for p in pages(sandbox).values())
    assert sandbox.ssh(DB, "mysql -N -B -e 'SHOW DATABASES'").stdout.split() == databases  # new one dropped
    secrets = sandbox.ssh(DB, "cat /etc/pinned/agroguia/secrets.env").stdout
    assert not any(line.split("=", 1)[1] in output for line in secrets.split())
    # The next run with a good pin converges.
    env.write(release=commits["C"]["commit"])
    env.deploy()
    assert env.pinned("plan", "--detailed-exitcode").returncode == 0


def test_app_account_is_confined_to_its_databases(multi, sandbox):
    shown = app_sql(sandbox, WEBS[0], "", "SHOW DATABASES")
    assert sorted(r[0] for r in shown["rows"]) == ["agroguia_v0", "agroguia_v1", "information_schema"]
    assert app_sql(sandbox, WEBS[0], "", "CREATE DATABASE other")["error"] == 1044
    assert app_sql(sandbox, WEBS[0], "", "CREATE DATABASE agroguiaXv9")["error"] == 1044
    assert app_sql(sandbox, WEBS[0], "", "SELECT user FROM mysql.user")["error"] in (1142, 1044)
    # The account exists for the web hosts' addresses only.
    accounts = sandbox.ssh(DB, "mysql -N -B -e \"SELECT host FROM mysql.user WHERE user='agroguia'\"").stdout.split()
    assert sorted(accounts) == sorted(sandbox.booted[w].address for w in WEBS)


def test_databases_are_listed_and_dropped_only_on_request(multi, sandbox, commits):
    env = multi
    env.write(release=commits["C"]["commit"])
    env.deploy()
    listed = json.loads(env.pinned("databases", "--json").stdout)["databases"]
    by_name = {d["database"]: d for d in listed}
    assert set(by_name) == {"agroguia_v0", "agroguia_v1"}
    assert by_name["agroguia_v1"]["last_used"] == "current" and by_name["agroguia_v0"]["last_used"] != "never"
    assert all(d["bytes"] > 0 and d["tables"] > 0 for d in listed)
    refused = env.pinned("drop-database", "agroguia_v1", check=False)
    assert refused.returncode == 1 and "current release" in refused.stderr
    dropped = env.pinned("drop-database", "agroguia_v0")
    assert dropped.returncode == 0
    assert "agroguia_v0" not in sandbox.ssh(DB, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    assert "Release: C" in http_get(f"http://{sandbox.booted[WEBS[0]].address}/").body
