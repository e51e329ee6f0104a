"""HTTPS (the state file's `site.tls`), planned for each web host (pure), with the nginx site it changes.

* Uploaded (`certificate`, `key`): the certificate and key go together (`tls-files`) before the nginx site
  that names them; the host's key is compared by its public half (the observe fact never reads a key).
* ACME (`acme`): certbot's webroot folder, the CA bundle and its certbot drop-in (a test/private ACME server),
  then the certificate (`certificate`: certbot certonly --webroot). A site with no certificate yet is first
  written without HTTPS but with the challenge location, so nginx can serve the challenge; the site with
  HTTPS follows the certificate. Renewals: Debian's certbot.timer (enabled here), nginx reloaded by the
  lineage's deploy hook.
* Removed (or switched from one kind to the other): what is no longer used goes in the cleanup phase, after
  nginx stopped naming it (`tls-remove`).

`certificate_report` is what the plan shows: each web host's certificate (subject, names, expiry) and a
warning for one that expires within WARN_DAYS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import changes as c
from .desired import Desired, HostSpec, ManagedFile, nginx_site, site_files
from .observed import HostObserved
from .plan import ADD, CHANGE, REMOVE, Step, config_step, file_diff
from .tls import WARN_DAYS, covers

CERTBOT_TIMER = "certbot.timer"


@dataclass(frozen=True)
class CertificateLine:
    """One web host's certificate, as the plan shows it (JSON: `certificates[]`)."""

    host: str
    source: str  # uploaded / acme
    state: str  # served / to upload / to issue
    subject: str = ""
    names: tuple[str, ...] = ()
    issuer: str = ""
    not_after: str = ""
    days_left: int | None = None

    def text(self) -> str:
        if not self.subject:
            return f"{self.host}: {self.state} ({self.source}) for {', '.join(self.names) or 'the site'}"
        return (f"{self.host}: {self.subject} ({', '.join(self.names) or 'no DNS names'}), issuer {self.issuer}, "
                f"expires {self.not_after} ({self.days_left} days) — {self.state} ({self.source})")


def _server(renewal: str) -> str:
    """The ACME directory a certbot renewal configuration names (`server = URL`)."""
    for line in renewal.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "server":
            return value.strip()
    return ""


def _days(info: dict, now: int) -> int:
    return int((int(info.get("expires") or 0) - now) // 86400)


def acme_need(d: Desired, o: HostObserved) -> str:
    """Why the ACME certificate must be (re)issued on this host ("": it need not)."""
    tls, lay = d.state.site.tls, d.layout
    info = o.certificates.get(lay.acme_certificate)
    if info is None:
        return "no certificate yet"
    if "invalid" in info:
        return f"the certificate cannot be read ({info['invalid']})"
    want = sorted(d.state.site.server_names)
    if sorted(info.get("names") or ()) != want:
        return f"names {', '.join(info.get('names') or ()) or 'none'} should be {', '.join(want)}"
    renewal = o.files.get(lay.acme_renewal)
    server = _server(renewal.content) if renewal else ""
    if server != tls.acme.directory:
        return f"issued through {server or 'an unknown directory'}, not {tls.acme.directory}"
    days = _days(info, o.now)
    if days < WARN_DAYS:
        return f"expires in {days} days: renewal is overdue (see `journalctl -u certbot`)"
    return ""


def uploaded_need(d: Desired, o: HostObserved) -> str:
    """Why the uploaded certificate and key must be written on this host ("": they need not)."""
    lay, local = d.layout, d.tls
    have = o.files.get(lay.tls_certificate)
    key = o.tls_keys.get(lay.tls_key)
    if have is None:
        return "missing"
    if have.content != local.certificate:
        info = o.certificates.get(lay.tls_certificate) or {}
        return (f"the host has another certificate ({info.get('subject') or 'unreadable'}, expires "
                f"{info.get('not_after') or '?'}): {local.info.subject}, expires {local.info.not_after}")
    if (have.owner, have.group, have.mode) != ("root", "root", "0644"):
        return f"certificate {have.owner}:{have.group} {have.mode} should be root:root 0644"
    if key is None:
        return "the key is missing"
    if key.get("public_key") != local.public_key:
        return "the host's key is not the certificate's"
    if (key.get("owner"), key.get("group"), key.get("mode")) != ("root", "root", "0600"):
        return f"key {key.get('owner')}:{key.get('group')} {key.get('mode')} should be root:root 0600"
    return ""


def acme_files(d: Desired) -> tuple[ManagedFile, ...]:
    """A test/private ACME server's CA bundle on the host, and certbot.service's drop-in that trusts it."""
    tls, lay = d.state.site.tls, d.layout
    if not (tls and tls.acme and d.acme and d.acme.ca_bundle):
        return ()
    dropin = (f"# Managed by pinned ({d.state.app}): certbot's renewals trust the CA of the ACME directory's HTTPS\n"
              f"# (site.tls.acme.ca_bundle: a test or private ACME server).\n[Service]\n"
              f"Environment=REQUESTS_CA_BUNDLE={lay.acme_ca_bundle}\n")
    return (ManagedFile(lay.acme_ca_bundle, d.acme.ca_bundle, "CA bundle of the ACME directory"),
            ManagedFile(lay.certbot_dropin, dropin, "certbot renewals' CA bundle", reload="systemd"))


def site_steps(d: Desired, host: HostSpec, o: HostObserved) -> list[Step]:
    """The web host's nginx files (phase site) with HTTPS's steps around them, in the order they must run."""
    tls, lay, name = d.state.site.tls, d.layout, host.name
    steps: list[Step] = []
    final = nginx_site(d)
    # nginx reads the write freeze's files only through the site's file: while the host has none (a first
    # deploy), they are written with the system phase, behind the virtualenv's build, with nothing to reload
    # (the site's file, last, is tested and loaded with them).
    early = o.files.get(final.path) is None
    for wanted in site_files(d):
        if wanted.reload == "nginx" and wanted.path != final.path:  # the write freeze's files
            step = config_step(name, o, replace(wanted, reload="") if early else wanted, "system" if early else "site")
            if step:
                steps.append(step)
    reissue = None
    if tls and tls.acme:
        have = o.paths.get(lay.acme_webroot)
        if have is None or (have.get("type"), have.get("owner"), have.get("mode")) != ("dir", "root", "0755"):
            steps.append(Step(name, ADD if have is None else CHANGE, c.Directory(lay.acme_webroot), lay.acme_webroot,
                              "certbot's webroot: nginx serves the ACME challenge from it", phase="site"))
        for wanted in acme_files(d):
            step = config_step(name, o, wanted, "site")
            if step:
                steps.append(step)
        need = acme_need(d, o)
        if need:
            issue = c.Certificate(cert_name=lay.cert_name, domains=tuple(d.state.site.server_names),
                                  email=tls.acme.email, directory=tls.acme.directory, webroot=lay.acme_webroot,
                                  ca_bundle=lay.acme_ca_bundle if acme_files(d) else "",
                                  force=need.startswith("issued through"))
            reissue = Step(name, ADD if need == "no certificate yet" else CHANGE, issue, lay.cert_name,
                           f"{', '.join(issue.domains)} from {tls.acme.directory}: {need}", phase="site")
        if reissue and o.certificates.get(lay.acme_certificate) is None:
            # No certificate to name yet: the site without HTTPS (but with the challenge) first, then the
            # certificate, then the site with it.
            before = nginx_site(d, with_certificate=False)
            step = config_step(name, o, before, "site")
            if step:
                steps.append(step)
            have_text = before.content
            steps.append(reissue)
            reissue = None
            steps.append(Step(name, CHANGE, c.ConfigFile(path=final.path, content=final.content, reload="nginx"),
                              final.path, "nginx site: HTTPS with the new certificate",
                              diff=file_diff(final.path, have_text, final.content), phase="site"))
            final = None
    elif tls:
        need = uploaded_need(d, o)
        if need:
            steps.append(Step(name, ADD if need == "missing" else CHANGE, c.TlsFiles(
                certificate_path=lay.tls_certificate, certificate=d.tls.certificate, key_path=lay.tls_key,
                key_source=d.tls.key_path, key_digest=d.tls.key_digest,
            ), f"{lay.tls_certificate} + {lay.tls_key}", need, phase="site"))
    if final is not None:
        step = config_step(name, o, final, "site")
        if step:
            steps.append(step)
    if reissue:
        steps.append(reissue)
    if tls and tls.acme and not (o.unit_active(CERTBOT_TIMER) and o.unit_enabled(CERTBOT_TIMER)):
        state = o.units.get(CERTBOT_TIMER, {})
        steps.append(Step(name, CHANGE, c.Service(CERTBOT_TIMER), CERTBOT_TIMER,
                          f"renews the certificate: {state.get('active') or 'missing'}, "
                          f"enabled={bool(state.get('enabled'))}", phase="site"))
    steps += leftovers(d, host, o)
    return steps


def leftovers(d: Desired, host: HostSpec, o: HostObserved) -> list[Step]:
    """What a former `site.tls` left that this one does not use (after the site stopped naming it)."""
    tls, lay = d.state.site.tls, d.layout
    uploaded = bool(tls and tls.acme is None)
    acme = bool(tls and tls.acme)
    paths = []
    if not uploaded:
        paths += [p for p in (lay.tls_certificate,) if o.files.get(p) is not None]
        paths += [p for p in (lay.tls_key,) if o.tls_keys.get(p) is not None]
    wanted = {f.path for f in acme_files(d)}
    paths += [p for p in (lay.acme_ca_bundle, lay.certbot_dropin) if p not in wanted and o.files.get(p) is not None]
    lineage = lay.cert_name if not acme and o.files.get(lay.acme_renewal) is not None else ""
    if not paths and not lineage:
        return []
    what = ", ".join([*paths, *([f"certbot lineage {lineage}"] if lineage else [])])
    why = "no `site.tls` in the state file" if tls is None else (
        "the certificate is uploaded now" if uploaded else "the certificate comes from ACME now")
    return [Step(host.name, REMOVE, c.TlsRemove(tuple(paths), lineage), what, why, phase="cleanup")]


def certificate_report(d: Desired, observed: dict[str, HostObserved]) -> tuple[tuple[CertificateLine, ...],
                                                                               tuple[str, ...]]:
    """Each web host's certificate as it is served (or will be), and warnings: under WARN_DAYS, expired, or
    not covering a server name."""
    tls, lay = d.state.site.tls, d.layout
    if tls is None:
        return (), ()
    lines, warnings = [], []
    if tls.acme and len(d.web_hosts) > 1:
        warnings.append("site.tls.acme with several web hosts: each gets its own certificate, and the CA's http-01 "
                        "request must reach the host that asked (the one the names resolve to); behind a load "
                        "balancer, upload one certificate instead (site.tls.certificate and key)")
    for web in d.web_hosts:
        o = observed[web.name]
        if tls.acme:
            info = o.certificates.get(lay.acme_certificate)
            if not info or "invalid" in info:
                lines.append(CertificateLine(web.name, "acme", f"to issue by {tls.acme.directory}",
                                             names=tuple(d.state.site.server_names)))
                continue
            days = _days(info, o.now)
            line = CertificateLine(web.name, "acme", "served", info.get("subject", ""), tuple(info.get("names") or ()),
                                   info.get("issuer", ""), info.get("not_after", ""), days)
        else:
            local = d.tls.info
            served = not uploaded_need(d, o)
            days = local.days_left(o.now or d.tls.checked_at)
            line = CertificateLine(web.name, "uploaded", "served" if served else "to upload", local.subject,
                                   local.names, local.issuer, local.not_after, days)
        lines.append(line)
        if days < 0:
            warnings.append(f"{web.name}: the certificate ({line.subject}) expired on {line.not_after}")
        elif days < WARN_DAYS:
            warnings.append(f"{web.name}: the certificate ({line.subject}) expires in {days} days, on "
                            f"{line.not_after}" + (": renew it (certbot.timer should have)" if tls.acme else
                                                   ": upload a new one (site.tls.certificate and key)"))
        missing = [n for n in d.state.site.server_names if not covers(line.names, n)]
        if missing:
            warnings.append(f"{web.name}: the certificate ({line.subject}) does not cover {', '.join(missing)}: "
                            "browsers will refuse those names")
    return tuple(lines), tuple(warnings)
