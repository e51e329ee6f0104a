"""End to end: production and staging side by side on one host, each with its own tree, database,
port and service; deploying or rolling back one never touches the other."""

from __future__ import annotations

import pytest

from conftest import Env, http_get

pytestmark = pytest.mark.sandbox
HOST = "pair"


def main_pids(sandbox, app):
    out = sandbox.ssh(HOST, f"systemctl show -p MainPID --value '{app}@*.service'").stdout
    return sorted(p for p in out.split() if p != "0")


def test_production_and_staging_side_by_side(sandbox, commits, tmp_path):
    host = sandbox.host(HOST)
    prod = Env("production", tmp_path, [HOST], release=commits["A"]["commit"])
    staging = Env("staging", tmp_path, [HOST], app="agroguia_staging", release=commits["A"]["commit"],
                  site={"port": 8080, "health_url": "/health/"})
    prod.deploy()
    staging.deploy()
    staging.write(release=commits["B"]["commit"])
    staging.deploy()
    assert "Release: A" in http_get(f"http://{host.address}/").body
    assert "Release: B" in http_get(f"http://{host.address}:8080/").body

    prod_tree = sandbox.ssh(HOST, "find /srv/agroguia /etc/pinned/agroguia -printf '%p %i %T@\\n' | sort").stdout
    prod_pids = main_pids(sandbox, "agroguia")
    staging.write(release=commits["A"]["commit"])
    plan = staging.pinned("plan").stdout
    assert "/srv/agroguia/" not in plan and "agroguia@" not in plan
    staging.deploy()
    assert "Release: A" in http_get(f"http://{host.address}:8080/").body
    assert "Release: A" in http_get(f"http://{host.address}/").body
    tree = sandbox.ssh(HOST, "find /srv/agroguia /etc/pinned/agroguia -printf '%p %i %T@\\n' | sort").stdout
    assert tree == prod_tree
    assert main_pids(sandbox, "agroguia") == prod_pids
    dbs = sandbox.ssh(HOST, "mysql -N -B -e 'SHOW DATABASES'").stdout.split()
    assert {"agroguia_v0", "agroguia_staging_v0"} <= set(dbs)
    assert prod.pinned("plan", "--detailed-exitcode").returncode == 0
    assert staging.pinned("plan", "--detailed-exitcode").returncode == 0


def test_apps_whose_names_prefix_each_other_never_reach_each_others_databases(sandbox, commits, tmp_path):
    """`shop` and `shop_vip` on one db host: a grant by pattern (`shop\\_v%`) would give shop's account
    shop_vip_v0; grants by name give each account its own schema databases only."""
    sandbox.host(HOST)
    for name, app, port in (("shop", "shop", 8091), ("vip", "shop_vip", 8092)):
        Env(name, tmp_path, [HOST], app=app, release=commits["A"]["commit"],
            site={"port": port, "health_url": "/health/"}).deploy()

    def as_account(app: str, sql: str):
        login = (f"MYSQL_PWD=$(sed -n 's/^DB_PASSWORD=//p' /etc/pinned/{app}/secrets.env) "
                 f"mysql -u {app} -N -B -e '{sql}' 2>&1")
        return sandbox.ssh(HOST, login, check=False)

    own = as_account("shop", "SELECT COUNT(*) FROM shop_v0.crops_crop")
    assert own.returncode == 0 and int(own.stdout.strip()) > 0
    for sql in ("SELECT COUNT(*) FROM shop_vip_v0.crops_crop",
                'INSERT INTO shop_vip_v0.crops_note (text) VALUES ("x")'):
        other = as_account("shop", sql)
        assert other.returncode != 0 and "denied" in other.stdout, other.stdout
    assert "shop_vip_v0" not in as_account("shop", "SHOW DATABASES").stdout
    assert "shop_v0" not in as_account("shop_vip", "SHOW DATABASES").stdout.split()
