"""End to end on two web hosts and a db host: a preview of B beside A on both web hosts, each answering at its
own host name (`host: true`: try-b.<server name>, on the site's port) with `current` untouched, through
accounts of its own (one per web host address, SELECT only) whose password reached the second web host like
the app's secrets; removed, it is gone from every host."""

from __future__ import annotations

import pytest

from conftest import Env, http_get

pytestmark = pytest.mark.sandbox
WEBS, DB = ["pvweb1", "pvweb2"], "pvdb"
KEY = "PINNED_PREVIEW_TRY_B_DB_PASSWORD"
SITE, PREVIEW = "shop.test", "try-b.shop.test"


@pytest.fixture(scope="module")
def multi(sandbox, commits, tmp_path_factory):
    sandbox.hosts([(WEBS[0], ("web",)), (WEBS[1], ("web",)), (DB, ("db",))])
    env = Env("pvmulti", tmp_path_factory.mktemp("state"), [*WEBS, DB], release=commits["A"]["commit"],
              site={"health_url": "/health/", "server_names": [SITE]})
    env.deploy()
    return env


def get(sandbox, web, name):
    return http_get(f"http://{sandbox.booted[web].address}/", host_header=name)


def post(sandbox, web, name):
    import urllib.error
    import urllib.request
    request = urllib.request.Request(f"http://{sandbox.booted[web].address}/notes/", data=b"text=x",
                                     headers={"Host": name})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def preview_accounts(sandbox):
    return sorted(sandbox.ssh(DB, "mysql -N -B -e \"SELECT CONCAT(user, '@', host) FROM mysql.user "
                                  "WHERE user LIKE 'agroguia\\_pv\\_%'\"").stdout.split())


def test_preview_on_two_web_hosts_and_removed_from_all(multi, sandbox):
    current = {w: sandbox.ssh(w, "readlink /srv/agroguia/current").stdout for w in WEBS}
    multi.pinned("preview", "add", "try-b", "B", "--host")
    multi.deploy()
    for web in WEBS:
        assert "Release: B" in get(sandbox, web, PREVIEW).body and "Release: A" in get(sandbox, web, SITE).body
        assert sandbox.ssh(web, "readlink /srv/agroguia/current").stdout == current[web]
        assert KEY in sandbox.ssh(web, "cut -d= -f1 /etc/pinned/agroguia/secrets.env").stdout
        assert post(sandbox, web, PREVIEW) >= 500  # its account may only read
    addresses = sorted(f"agroguia_pv_try_b@{sandbox.booted[w].address}" for w in WEBS)
    assert preview_accounts(sandbox) == addresses
    second = sandbox.booted[WEBS[1]].address
    grants = sandbox.ssh(DB, f"mysql -N -B -r -e \"SHOW GRANTS FOR 'agroguia_pv_try_b'@'{second}'\"")
    assert "GRANT SELECT ON `agroguia\\_v0`.*" in grants.stdout and "INSERT" not in grants.stdout
    assert post(sandbox, WEBS[1], SITE) == 201  # the site writes as before
    assert multi.pinned("plan", "--detailed-exitcode").returncode == 0

    multi.pinned("preview", "remove", "try-b")
    plan = multi.pinned("plan").stdout
    assert plan.count("- preview-remove agroguia-pv-try-b.service") == 2
    multi.deploy()
    for web in WEBS:
        # no unit file, no nginx server, no unit loaded from a file or running (systemd may still list a
        # "not-found inactive dead" entry for a removed unit until it forgets it: that is no unit at all)
        left = sandbox.ssh(web, "ls /etc/systemd/system/agroguia-pv-* /etc/nginx/conf.d/pinned-agroguia.pv-* "
                                "2>/dev/null; systemctl list-units --all --plain --no-legend 'agroguia-pv-*'",
                           check=False).stdout.splitlines()
        assert not [line for line in left if line.split()[1:3] != ["not-found", "inactive"]], left
        assert KEY not in sandbox.ssh(web, "cut -d= -f1 /etc/pinned/agroguia/secrets.env").stdout
        assert "Release: A" in get(sandbox, web, SITE).body
        assert "Release: B" not in get(sandbox, web, PREVIEW).body  # the site's server answers (400: not its name)
    assert preview_accounts(sandbox) == []
    assert multi.pinned("plan", "--detailed-exitcode").returncode == 0
