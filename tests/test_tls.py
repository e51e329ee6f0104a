"""End to end: HTTPS (`site.tls`) on one sandbox host, against a real ACME server.

Debian's `pebble` (an ACME test server) runs on this machine, on the sandbox bridge's address; its mock DNS
(`pebble-challtestsrv`) answers every name with the web host's address, so pebble validates the http-01
challenge against the host's port 80 — through the site's own nginx, from certbot's webroot. certbot on the
host trusts pebble's HTTPS through `site.tls.acme.ca_bundle` (a CA made here with openssl). Checked as a
client sees it: the site answers over TLS with a chain that verifies against pebble's root (fetched from its
management port), HTTP redirects to HTTPS but the challenge path, HSTS and secure cookies, the plan shows the
certificate; a renewal started through certbot.timer's service replaces the certificate (its serial
changes) under a load loop with no failed request. Before all that, a name the CA cannot validate fails
the run and leaves the site on plain HTTP. Then an uploaded certificate and key (a CA made here),
and removing `site.tls`: each time what the previous one left is gone.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from test_tls_plan import make_ca, make_leaf

from conftest import Env
from load import Load

pytestmark = pytest.mark.sandbox
HOST = "tls"
NAME = "shop.pinned.test"
APP = "agroguia"


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Pebble:
    """pebble and its mock DNS on this machine, listening on the sandbox bridge's address."""

    def __init__(self, folder: Path, gateway: str, web_address: str):
        self.folder, self.gateway = folder, gateway
        make_ca(folder, "pebble-ca")
        # pebble's own HTTPS: a certificate for the bridge's address (and localhost, its management port)
        openssl = ["openssl"]
        subprocess.run([*openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                        "/CN=pebble", "-keyout", "pebble.key", "-out", "pebble.csr"], cwd=folder, check=True,
                       capture_output=True)
        (folder / "pebble.ext").write_text(f"subjectAltName=IP:{gateway},IP:127.0.0.1\n")
        subprocess.run([*openssl, "x509", "-req", "-in", "pebble.csr", "-CA", "pebble-ca.pem", "-CAkey",
                        "pebble-ca.key", "-CAcreateserial", "-days", "2", "-extfile", "pebble.ext", "-out",
                        "pebble.crt"], cwd=folder, check=True, capture_output=True)
        self.port, self.management = free_port(gateway), free_port("127.0.0.1")
        dns, self.dns_management = free_port("127.0.0.1"), free_port("127.0.0.1")
        (folder / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"{gateway}:{self.port}", "managementListenAddress": f"127.0.0.1:{self.management}",
            "certificate": str(folder / "pebble.crt"), "privateKey": str(folder / "pebble.key"),
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        log = open(folder / "pebble.log", "w")
        self.dns = subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", web_address, "-defaultIPv6", "", "-dns01", f"127.0.0.1:{dns}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{self.dns_management}"],
            stdout=log, stderr=subprocess.STDOUT)
        self.pebble = subprocess.Popen(
            ["pebble", "-config", str(folder / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=folder,
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
        self.context = ssl.create_default_context(cafile=str(folder / "pebble-ca.pem"))
        wait_for(lambda: self.get(f"{self.directory}").status == 200, what="pebble's directory")

    @property
    def directory(self) -> str:
        return f"https://{self.gateway}:{self.port}/dir"

    @property
    def ca_bundle(self) -> Path:
        return self.folder / "pebble-ca.pem"

    def get(self, url: str):
        return urllib.request.urlopen(url, context=self.context, timeout=10)

    def resolve(self, name: str, address: str | None) -> None:
        """The mock DNS answers `name` with `address` (None: as every other name, the web host's address)."""
        body = {"host": name, **({"addresses": [address]} if address else {})}
        request = urllib.request.Request(f"http://127.0.0.1:{self.dns_management}/{'add-a' if address else 'clear-a'}",
                                         method="POST", data=json.dumps(body).encode())
        assert urllib.request.urlopen(request, timeout=10).status == 200

    def root(self) -> str:
        """The root of the certificates pebble issues (made anew each time pebble starts)."""
        return self.get(f"https://127.0.0.1:{self.management}/roots/0").read().decode()

    def stop(self) -> None:
        for proc in (self.pebble, self.dns):
            proc.terminate()
            proc.wait(10)


def tls_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))  # verifies the chain and the name


class To(http.client.HTTPSConnection):
    """HTTPS to `address` for the name `host` (SNI and certificate check on the name, TCP to the address)."""

    address = ""

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def https(address: str, context: ssl.SSLContext, path: str = "/", port: int = 443):
    conn = type("Conn", (To,), {"address": address})(NAME, port, context=context, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        serial = format(int(conn.sock.getpeercert()["serialNumber"], 16), "X")
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode(), serial
    finally:
        conn.close()


def plain(address: str, path: str) -> tuple[int, dict, str]:
    """HTTP on port 80, redirects not followed."""
    conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": NAME, "Connection": "close"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


class TlsLoad(Load):
    """The load loop over HTTPS, verifying the chain against a root each time (a new connection per request)."""

    def __init__(self, address: str, context: ssl.SSLContext, **kw):
        super().__init__(f"https://{NAME}/", **kw)
        self._conn_class = type("Conn", (To,), {"address": address})
        self._context = context

    def _connection(self):
        return self._conn_class(NAME, 443, context=self._context, timeout=self.timeout)


@pytest.fixture(scope="module")
def site(sandbox, tmp_path_factory):
    if not (shutil.which("pebble") and shutil.which("pebble-challtestsrv") and shutil.which("openssl")):
        pytest.fail("needs Debian's pebble and openssl on this machine (`make deps` installs them)")
    host = sandbox.host(HOST)
    gateway = host.address.rsplit(".", 1)[0] + ".1"
    folder = tmp_path_factory.mktemp("pebble")
    pebble = Pebble(folder, gateway, host.address)
    yield host, pebble, folder
    pebble.stop()


def test_https_from_acme_then_uploaded_then_off(site, sandbox, tmp_path, commits):
    host, pebble, folder = site
    env = Env("tls", tmp_path, [HOST], release=commits["A"]["commit"], site={
        "health_url": "/health/", "server_names": [NAME],
        "tls": {"hsts": 300, "acme": {"email": "ops@pinned.test", "directory": pebble.directory,
                                      "ca_bundle": str(pebble.ca_bundle)}}})

    # The CA cannot reach the host (the mock DNS sends pebble to the bridge's address, where nothing answers on
    # port 80): the run fails with certbot's reason, and the site stays on plain HTTP, whole, nothing on 443.
    pebble.resolve(NAME, pebble.gateway)
    failed = env.deploy(check=False)
    assert failed.returncode != 0
    assert "Some challenges have failed" in failed.stdout + failed.stderr, failed.stdout[-3000:]
    status, _headers, body = plain(host.address, "/")
    assert status == 200 and "Release: A" in body
    with pytest.raises(OSError):
        https(host.address, tls_context(pebble.ca_bundle))
    pebble.resolve(NAME, None)

    planned = env.pinned("plan").stdout
    assert f"+ certificate pinned-{APP}" in planned and f"to issue by {pebble.directory} (acme) for {NAME}" in planned
    out = env.deploy()
    assert "certificate" in out.stdout

    root = folder / "pebble-root.pem"
    root.write_text(pebble.root())
    trust = tls_context(root)
    # The site over TLS: the chain verifies against pebble's root, for the site's name.
    status, headers, body, serial = https(host.address, trust, "/visit/")
    assert status == 200 and "Release: A" in https(host.address, trust)[2]
    assert headers["strict-transport-security"] == "max-age=300"
    assert "secure" in headers["set-cookie"].lower()  # SESSION_COOKIE_SECURE, behind nginx's X-Forwarded-Proto
    with pytest.raises(ssl.SSLCertVerificationError):
        https(host.address, tls_context(pebble.ca_bundle))  # another root: refused (the check can fail)
    # Port 80: a redirect to HTTPS, but the ACME challenge's path (served from certbot's webroot).
    status, headers, _ = plain(host.address, "/crops/?page=2")
    assert status == 301 and headers["location"] == f"https://{NAME}/crops/?page=2"
    sandbox.ssh(HOST, f"echo probe-token > /srv/{APP}/acme/.well-known/acme-challenge/probe")
    assert plain(host.address, "/.well-known/acme-challenge/probe")[:3:2] == (200, "probe-token\n")
    # CSRF: a cross-origin-checked POST from the site's https origin passes the settings' trusted origins.
    check = sandbox.ssh(HOST, f"cd /srv/{APP}/current && set -a && . /etc/pinned/{APP}/env && set +a && "
                        ".venv/bin/python -c 'import pinned_settings as s; print(s.CSRF_TRUSTED_ORIGINS, "
                        "s.SECURE_PROXY_SSL_HEADER, s.CSRF_COOKIE_SECURE)'").stdout
    assert f"['https://{NAME}'] ('HTTP_X_FORWARDED_PROTO', 'https') True" in check
    # The plan: converged, and it shows the certificate.
    again = env.pinned("plan").stdout
    assert "No changes." in again and f"Certificates:\n  {HOST}: CN={NAME} ({NAME}), issuer CN=Pebble" in again
    # ...and `pinned status` shows its expiry, by the host's clock
    shown = env.pinned("status").stdout
    assert re.search(rf"certificate: CN={re.escape(NAME)} \({re.escape(NAME)}\), issued by CN=Pebble.*, expires .+ "
                     r"\(in \d+ days\)", shown), shown
    assert "— served (acme)" in again
    timer = sandbox.ssh(HOST, "systemctl is-enabled certbot.timer; systemctl is-active certbot.timer").stdout
    assert timer.split() == ["enabled", "active"]

    # Renewal through the timer's service (forced: pebble's certificate is not due), under load.
    with TlsLoad(host.address, trust, clients=4, max_duration=120) as load:
        wait_for(lambda: load.requests > 20, what="the load loop")
        started = time.monotonic()
        sandbox.ssh(HOST, "cp /etc/letsencrypt/cli.ini /root/cli.ini.orig && "
                    "echo 'force-renewal = True' >> /etc/letsencrypt/cli.ini && systemctl start certbot.service; "
                    "status=$?; cp /root/cli.ini.orig /etc/letsencrypt/cli.ini; exit $status")
        renewal_took = time.monotonic() - started
        renewed = wait_for(lambda: (s := https(host.address, trust)[3]) != serial and s, timeout=30,
                           what="the renewed certificate")
        seen = load.requests
        wait_for(lambda: load.requests > seen + 20, what="requests after the renewal")
    print(f"renewal under load: certbot.service {renewal_took:.1f} s, serial {serial} -> {renewed}; "
          + load.report().replace("\n", " |"))
    assert renewed != serial
    assert load.requests > 40 and load.failures == 0, load.report()
    result = sandbox.ssh(HOST, "systemctl show -p Result --value certbot.service").stdout.strip()
    assert result == "success"

    # An uploaded certificate and key instead (a CA made here): the ACME lineage and its drop-in go.
    own = tmp_path / "own"
    own.mkdir()
    make_ca(own)
    cert, key = make_leaf(own, [NAME])
    env.write(site={**env.state["site"], "tls": {"certificate": str(cert), "key": str(key)}})
    out = env.deploy()
    key_text = key.read_text()
    key_line = key_text.splitlines()[1]
    assert key_line not in out.stdout + out.stderr
    status, headers, body, _ = https(host.address, tls_context(own / "ca.pem"))
    assert status == 200 and "strict-transport-security" not in headers
    files = sandbox.ssh(HOST, f"stat -c '%U:%G %a %n' /etc/pinned/{APP}/tls/privkey.pem "
                        f"/etc/pinned/{APP}/tls/fullchain.pem; ls /etc/letsencrypt/live /etc/systemd/system/"
                        f"certbot.service.d 2>&1; grep -rlF {key_line!r} /tmp /var/tmp /root 2>/dev/null; true").stdout
    assert f"root:root 600 /etc/pinned/{APP}/tls/privkey.pem" in files
    assert f"root:root 644 /etc/pinned/{APP}/tls/fullchain.pem" in files
    assert f"pinned-{APP}" not in files and "pinned-" + APP + ".conf" not in files
    assert key_line not in files and "/tmp/" not in files
    assert "No changes." in env.pinned("plan").stdout

    # No `site.tls`: plain HTTP again, port 443 closed, the uploaded files gone.
    env.write(site={k: v for k, v in env.state["site"].items() if k != "tls"})
    env.deploy()
    status, _headers, body = plain(host.address, "/")
    assert status == 200 and "Release: A" in body
    with pytest.raises(OSError):
        https(host.address, tls_context(own / "ca.pem"))
    assert sandbox.ssh(HOST, f"ls /etc/pinned/{APP}/tls/ | wc -l").stdout.strip() == "0"
    assert "No changes." in env.pinned("plan").stdout
