"""HTTPS without hosts: the state file's `site.tls`, the local certificate checks (real files made with openssl),
the plan with the simulator (plan, apply, plan again is empty; ACME's first certificate goes through a site
without HTTPS; switching kinds and removing cleans up), what the plan shows (subject, expiry, the 14-day
warning), the nginx site and the settings' environment, and bad input through the real CLI: one line naming
the field, before any host is contacted."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from test_plan import EMPTY, HOST, RELEASES, desired

from pinned.state.desired import env_values, nginx_site
from pinned.state.model import Site, StateFileError, parse_state
from pinned.state.plan import plan
from pinned.state.plan_tls import acme_need
from pinned.state.render import plan_json, render_text
from pinned.state.tls import check_local, covers, parse_x509_text
from simulate import apply_plan

ROOT = Path(__file__).resolve().parent.parent
LAY_APP = "agroguia"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str = "ca") -> Path:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", f"/CN=pinned test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder)
    return folder / f"{name}.pem"


def make_leaf(folder: Path, names: list[str], days: int = 30, ca: str = "ca", stem: str = "site") -> tuple[Path, Path]:
    """A certificate for `names` signed by the CA `ca` in `folder`, and its key."""
    san = ",".join(f"DNS:{n}" for n in names)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={names[0]}",
            "-keyout", f"{stem}.key", "-out", f"{stem}.csr", cwd=folder)
    (folder / f"{stem}.ext").write_text(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", str(days), "-extfile", f"{stem}.ext", "-out", f"{stem}.crt", cwd=folder)
    return folder / f"{stem}.crt", folder / f"{stem}.key"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    make_ca(folder)
    cert, key = make_leaf(folder, ["shop.example.com", "www.shop.example.com"])
    other_cert, other_key = make_leaf(folder, ["shop.example.com"], stem="other")
    short, short_key = make_leaf(folder, ["shop.example.com"], days=5, stem="short")
    return {"folder": folder, "cert": cert, "key": key, "other_key": other_key, "short": short,
            "short_key": short_key}


def tls_desired(tag: str, tls: dict, folder: Path, names=("shop.example.com", "www.shop.example.com"), **more):
    d = desired(tag, **more)
    site = Site.model_validate({"health_url": "/health/", "server_names": list(names), "tls": tls})
    d = replace(d, state=d.state.model_copy(update={"site": site}))
    local, acme = check_local(d.state, folder, "test.yaml")
    return replace(d, tls=local, acme=acme)


def test_model_takes_one_kind_of_certificate_and_checks_its_fields():
    base = "app: shop\nrepository: .\nrelease: abcdef1\ndjango: {settings: s}\n"
    ok = parse_state(base + "site: {server_names: [a.example], tls: {acme: {email: me@example.com}}}\n")
    assert ok.site.tls.acme.directory == "https://acme-v02.api.letsencrypt.org/directory" and ok.site.tls.hsts == 0
    bad = {
        "tls: {acme: {email: me@example.com}, certificate: c.pem, key: k.pem}": "either certificate and key, or acme",
        "tls: {certificate: c.pem}": "key is missing",
        "tls: {}": "give certificate and key",
        "tls: {acme: {email: not-an-email}}": "site.tls.acme.email",
        "tls: {acme: {email: me@example.com, directory: 'http://acme.example/dir'}}": "site.tls.acme.directory",
        "tls: {acme: {email: me@example.com, directory: 'https://x/$(reboot)'}}": "site.tls.acme.directory",
        "tls: {acme: {email: me@example.com}}, port: 8080": "must be 80",
        "tls: {certificate: c.pem, key: k.pem, port: 80}": "HTTPS needs a port of its own",
        "tls: {certificate: 'c;rm.pem', key: k.pem}": "site.tls.certificate",
    }
    wild = base + "site: {server_names: ['*.a.example'], tls: {acme: {email: me@example.com}}}\n"
    with pytest.raises(StateFileError, match="does not cover wildcards"):
        parse_state(wild, "x.yaml")
    with pytest.raises(StateFileError, match="needs server_names"):
        parse_state(base + "site: {tls: {acme: {email: me@example.com}}}\n", "x.yaml")
    for text, expected in bad.items():
        with pytest.raises(StateFileError) as exc:
            parse_state(base + "site: {server_names: [a.example], " + text + "}\n", "x.yaml")
        assert expected in str(exc.value) and "\n" not in str(exc.value), (text, str(exc.value))


def test_local_check_reads_the_certificate_and_matches_the_key(certs):
    d = tls_desired("A", {"certificate": str(certs["cert"]), "key": str(certs["key"])}, certs["folder"])
    assert d.tls.info.subject == "CN=shop.example.com"
    assert d.tls.info.names == ("shop.example.com", "www.shop.example.com")
    assert 28 <= d.tls.info.days_left(d.tls.checked_at) <= 30
    assert "PRIVATE" not in repr(d.tls)  # the key's text is never held, only its path and digest
    # relative paths are from the state file's folder
    rel = tls_desired("A", {"certificate": "site.crt", "key": "site.key"}, certs["folder"])
    assert rel.tls.public_key == d.tls.public_key


@pytest.mark.parametrize("tls, expected", [
    ({"certificate": "nope.crt", "key": "site.key"}, "field 'site.tls.certificate': {f}/nope.crt does not exist"),
    ({"certificate": "site.crt", "key": "nope.key"}, "field 'site.tls.key': {f}/nope.key does not exist"),
    ({"certificate": "site.crt", "key": "other.key"}, "field 'site.tls.key': {f}/other.key is not the key of the "
                                                      "certificate"),
    ({"certificate": "site.key", "key": "site.key"}, "field 'site.tls.certificate': {f}/site.key holds no PEM "
                                                     "certificate"),
    ({"certificate": "site.crt", "key": "site.crt"}, "field 'site.tls.key': {f}/site.crt holds no PEM private key"),
    ({"acme": {"email": "me@example.com", "ca_bundle": "nope.pem"}}, "field 'site.tls.acme.ca_bundle'"),
])
def test_local_check_names_the_field(certs, tls, expected):
    with pytest.raises(StateFileError) as exc:
        tls_desired("A", tls, certs["folder"])
    assert expected.format(f=certs["folder"]) in str(exc.value)


def test_uploaded_certificate_converges_and_shows_what_it_serves(certs):
    d = tls_desired("A", {"certificate": "site.crt", "key": "site.key", "hsts": 600}, certs["folder"])
    first = plan(d, EMPTY)
    kinds = [s.kind for s in first.steps]
    assert kinds.index("tls-files") < max(i for i, s in enumerate(first.steps)
                                          if s.target.endswith("pinned-agroguia.conf"))
    files = next(s for s in first.steps if s.kind == "tls-files")
    assert "PRIVATE KEY" not in json.dumps(plan_json(first, "x.yaml")) + render_text(first, "x.yaml")
    assert files.change.key_source == str(certs["key"]) and files.change.key_path.endswith("/privkey.pem")
    text = render_text(first, "x.yaml")
    assert "Certificates:\n  server: CN=shop.example.com (shop.example.com, www.shop.example.com), issuer " \
           "CN=pinned test ca" in text and "to upload (uploaded)" in text
    after = apply_plan(first, EMPTY, d)
    again = plan(d, after)
    assert again.empty and "served (uploaded)" in render_text(again, "x.yaml")
    doc = plan_json(again, "x.yaml")
    assert doc["certificates"][0]["subject"] == "CN=shop.example.com" and doc["certificates"][0]["days_left"] >= 28
    # a key that is not the certificate's on the host (drift) is put back
    lay_key = files.change.key_path
    drift = {"server": replace(after["server"], tls_keys={lay_key: {**after["server"].tls_keys[lay_key],
                                                                    "public_key": "0" * 64}})}
    assert [s.reason for s in plan(d, drift).steps] == ["the host's key is not the certificate's"]


def test_nginx_site_redirects_port_80_and_serves_https_with_hsts(certs):
    d = tls_desired("A", {"certificate": "site.crt", "key": "site.key", "hsts": 600}, certs["folder"],
                    shared=["media"])
    d = replace(d, state=d.state.model_copy(update={"site": d.state.site.model_copy(update={"media_url": "/m/"})}))

    conf = nginx_site(d).content
    http, https = conf.split("listen 443 ssl;")
    assert "return 301 https://$host$request_uri;" in http and "acme-challenge" not in http
    assert "ssl_certificate /etc/pinned/agroguia/tls/fullchain.pem;" in https
    # HSTS on the server and again in each location that sets headers of its own (nginx drops the server's)
    assert https.count('add_header Strict-Transport-Security "max-age=600" always;') == 3
    env = env_values(d)
    assert env["PINNED_HTTPS"] == "1"
    assert env["PINNED_CSRF_TRUSTED_ORIGINS"] == "https://shop.example.com https://www.shop.example.com"
    plain = desired("A")
    assert "ssl" not in nginx_site(plain).content and "PINNED_HTTPS" not in env_values(plain)


ACME = {"acme": {"email": "ops@example.com", "directory": "https://acme.test:14000/dir"}}


def test_acme_first_certificate_goes_through_a_site_without_https(certs):
    d = tls_desired("A", ACME, certs["folder"], names=("shop.example.com",))
    first = plan(d, EMPTY)
    site = [(s.kind, s.target, s.reason) for s in first.steps if s.phase == "site"]
    kinds = [k for k, _t, _r in site]
    assert "certbot" in [p for s in first.steps if s.kind == "packages" for p in s.change.packages]
    i = kinds.index("certificate")
    before, after = site[i - 1], site[i + 1]
    assert before[2].startswith("nginx site (before its certificate") and after[2].startswith("nginx site: HTTPS")
    before_text = next(s for s in first.steps if s.reason.startswith("nginx site (before")).change.content
    assert "location ^~ /.well-known/acme-challenge/" in before_text and "ssl" not in before_text
    assert "to issue by https://acme.test:14000/dir" in render_text(first, "x.yaml")
    assert ("service", "certbot.timer") in [(k, t) for k, t, _r in site]
    on = apply_plan(first, EMPTY, d)
    assert plan(d, on).empty
    final = nginx_site(d).content
    assert "ssl_certificate /etc/letsencrypt/live/pinned-agroguia/fullchain.pem;" in final
    http = final.split("ssl;")[0]
    assert "location ^~ /.well-known/acme-challenge/" in http and "return 301" in http
    # another directory: a new certificate, forced; the site keeps serving the old one meanwhile
    other = tls_desired("A", {"acme": {**ACME["acme"], "directory": "https://other.test/dir"}}, certs["folder"],
                        names=("shop.example.com",))
    steps = plan(other, on).steps
    cert = next(s for s in steps if s.kind == "certificate")
    assert cert.change.force and "issued through https://acme.test:14000/dir" in cert.reason
    assert not [s for s in steps if "before its certificate" in s.reason]


def test_acme_warns_and_renews_under_14_days(certs):
    d = tls_desired("A", ACME, certs["folder"], names=("shop.example.com",))
    on = apply_plan(plan(d, EMPTY), EMPTY, d)
    o = on["server"]
    path = d.layout.acme_certificate
    aged = replace(o, now=o.certificates[path]["expires"] - 9 * 86400 - 60)
    assert acme_need(d, aged).startswith("expires in 9 days")
    p = plan(d, {"server": aged})
    assert any("expires in 9 days" in w for w in p.warnings)
    assert [s.kind for s in p.steps] == ["certificate"]


def test_uploaded_certificate_under_14_days_warns(certs):
    d = tls_desired("A", {"certificate": "short.crt", "key": "short.key"}, certs["folder"],
                    names=("shop.example.com",))
    p = plan(d, EMPTY)
    assert any(w.startswith("server: the certificate (CN=shop.example.com) expires in 4 days") for w in p.warnings)


def test_certificate_not_covering_a_name_warns(certs):
    d = tls_desired("A", {"certificate": "site.crt", "key": "site.key"}, certs["folder"],
                    names=("shop.example.com", "api.example.com"))
    assert any("does not cover api.example.com" in w for w in plan(d, EMPTY).warnings)
    assert covers(("*.example.com",), "api.example.com") and not covers(("*.example.com",), "a.b.example.com")


def test_switching_kinds_and_removing_cleans_up_after_the_site(certs):
    uploaded = tls_desired("A", {"certificate": "site.crt", "key": "site.key"}, certs["folder"])
    acme = tls_desired("A", ACME, certs["folder"])
    on = apply_plan(plan(uploaded, EMPTY), EMPTY, uploaded)
    to_acme = plan(acme, on)
    remove = next(s for s in to_acme.steps if s.kind == "tls-remove")
    assert remove.phase == "cleanup" and remove.change.paths == ("/etc/pinned/agroguia/tls/fullchain.pem",
                                                                 "/etc/pinned/agroguia/tls/privkey.pem")
    on = apply_plan(to_acme, on, acme)
    assert plan(acme, on).empty
    off = plan(desired("A"), on)
    remove = next(s for s in off.steps if s.kind == "tls-remove")
    assert remove.change.cert_name == "pinned-agroguia" and "no `site.tls`" in remove.reason
    on = apply_plan(off, on, desired("A"))
    assert plan(desired("A"), on).empty


def tls_kinds(folder: Path) -> set:
    """The change types HTTPS uses (test_changes checks every kind is planned and fits its operation)."""
    make_ca(folder)
    make_leaf(folder, ["shop.example.com", "www.shop.example.com"])
    uploaded = tls_desired("A", {"certificate": "site.crt", "key": "site.key"}, folder)
    on = apply_plan(plan(uploaded, EMPTY), EMPTY, uploaded)
    acme = tls_desired("A", ACME, folder)
    return {type(s.change) for p in (plan(uploaded, EMPTY), plan(acme, on)) for s in p.steps}


def test_x509_text_is_parsed_the_same_here_and_on_the_host(certs):
    out = subprocess.run(["openssl", "x509", "-in", str(certs["cert"]), "-noout", "-subject", "-issuer", "-enddate",
                          "-serial", "-ext", "subjectAltName", "-nameopt", "RFC2253"], capture_output=True,
                         text=True, check=True).stdout
    namespace: dict = {}
    source = (ROOT / "operations" / "remote" / "observe.py").read_text()
    imports = "import ssl\nimport time\n"
    function = "def parse_x509_text" + source.split("\ndef parse_x509_text")[1].split("\ndef observe_certificates")[0]
    exec(compile(imports + function, "observe.py", "exec"), namespace)
    assert namespace["parse_x509_text"](out) == parse_x509_text(out)
    assert parse_x509_text(out)["names"] == ["shop.example.com", "www.shop.example.com"]


def test_bad_certificate_input_stops_the_cli_before_any_host(certs, tmp_path):
    """`pinned plan` with hosts that do not exist: the certificate checks come first, one line, exit 1."""
    repo = ROOT / ".build" / "agroguia"
    if not repo.exists():
        pytest.skip("the example repository is built by `make repo`")
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    cases = {
        "certificate: missing.crt, key: " + str(certs["key"]): "field 'site.tls.certificate'",
        f"certificate: {certs['cert']}, key: {certs['other_key']}": "is not the key of the certificate",
        "acme: {email: 'me at example'}": "field 'site.tls.acme.email'",
        "acme: {email: me@example.com, directory: 'ftp://x'}": "field 'site.tls.acme.directory'",
    }
    for tls, expected in cases.items():
        (tmp_path / "prod.yaml").write_text(
            f"app: shop\nrepository: {repo}\nrelease: {commit}\ndjango: {{settings: agroguia.settings}}\n"
            "hosts: {web: [www1.invalid], db: db1.invalid}\n"
            f"site: {{server_names: [shop.example.com], tls: {{{tls}}}}}\n")
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "pinned"), "--env", "prod", "plan"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PINNED_STATE_DIR": str(tmp_path)})
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1 and len(lines) == 1, (tls, proc.stdout, proc.stderr)
        assert expected in lines[0] and "prod.yaml" in lines[0] and "invalid" not in lines[0].split("field")[0]
        assert "connect" not in proc.stdout + proc.stderr and "BEGIN" not in proc.stderr


_ = (HOST, RELEASES)
