"""HTTPS (the state file's `site.tls`): the local files it names, checked before any host is contacted, and
what the plan says about certificates.

The checks run `openssl` on the deploying machine (the CLI: it is on every Debian system, and nothing has to
be added to pinned's virtualenv): the certificate must parse, the key must parse (unencrypted) and be the
certificate's (their public keys are compared), an ACME CA bundle must parse. A failure is one line naming
the field (StateFileError). The key's text is never kept here: only its path (the operation reads it when it
sends it, over SSH's stdin) and the digest of its public half.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .model import State, StateFileError

# The plan warns about a certificate that expires sooner than this.
WARN_DAYS = 14


@dataclass(frozen=True)
class CertInfo:
    """What the plan shows of a certificate (the first of a PEM file: the leaf)."""

    subject: str
    issuer: str
    names: tuple[str, ...]  # DNS names of subjectAltName
    not_after: str  # YYYY-MM-DD HH:MM UTC
    expires: int  # seconds since the epoch
    serial: str = ""

    def days_left(self, now: float) -> int:
        return int((self.expires - now) // 86400)


@dataclass(frozen=True)
class LocalTls:
    """The uploaded certificate and key of `site.tls` as found on this machine."""

    certificate: str  # the PEM text (public), uploaded as it is
    info: CertInfo
    key_path: str  # resolved: read only when it is sent
    key_digest: str  # SHA-256 of the key file's bytes: the operation refuses a key that changed since the check
    public_key: str  # SHA-256 of the certificate's public key (PEM): what the host's key must match
    checked_at: float = 0.0


@dataclass(frozen=True)
class LocalAcme:
    ca_bundle: str = ""  # the PEM text of `acme.ca_bundle`, or ""


def parse_x509_text(text: str) -> dict:
    """`openssl x509 -noout -subject -issuer -enddate -serial -ext subjectAltName -nameopt RFC2253` output →
    {subject, issuer, names, not_after, expires, serial}. (operations/remote/observe.py parses the same
    output on the hosts.)"""
    out: dict = {"names": []}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if sep and key in ("subject", "issuer", "serial", "notAfter"):
            out[key] = value.strip()
        elif "Subject Alternative Name" in line and i + 1 < len(lines):
            out["names"] = [part.strip()[4:] for part in lines[i + 1].split(",") if part.strip().startswith("DNS:")]
    expires = int(ssl.cert_time_to_seconds(out["notAfter"])) if out.get("notAfter") else 0
    return {"subject": out.get("subject", ""), "issuer": out.get("issuer", ""), "names": out["names"],
            "expires": expires, "not_after": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)),
            "serial": out.get("serial", "")}


def cert_info(data: dict) -> CertInfo:
    return CertInfo(subject=data["subject"], issuer=data["issuer"], names=tuple(data["names"]),
                    not_after=data["not_after"], expires=int(data["expires"]), serial=data.get("serial", ""))


def _openssl(*args: str, what: str, field: str, source: str) -> str:
    tool = shutil.which("openssl")
    if not tool:
        raise StateFileError(f"{source}: field '{field}': checking {what} needs the `openssl` command on this "
                             "machine (Debian package openssl)")
    proc = subprocess.run([tool, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30,
                          env={**os.environ, "LC_ALL": "C"})
    if proc.returncode != 0:
        detail = next((line.strip() for line in proc.stderr.splitlines() if line.strip()), "")
        raise StateFileError(f"{source}: field '{field}': {what} cannot be read by openssl"
                             + (f" ({detail})" if detail else ""))
    return proc.stdout


def _local_file(value: str, base: Path, field: str, source: str) -> Path:
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise StateFileError(f"{source}: field '{field}': {path} does not exist (a path relative to the state "
                             "file's folder, or absolute)")
    if not os.access(path, os.R_OK):
        raise StateFileError(f"{source}: field '{field}': {path} cannot be read by this user")
    return path


def _public_key_digest(pem: str) -> str:
    return hashlib.sha256("".join(pem.split()).encode()).hexdigest()


def read_certificate(path: Path, field: str, source: str) -> tuple[str, CertInfo, str]:
    """A local certificate file: its text, what it says, its public key's digest."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise StateFileError(f"{source}: field '{field}': {path} holds no PEM certificate "
                             "(-----BEGIN CERTIFICATE-----)")
    if "PRIVATE KEY-----" in text:
        raise StateFileError(f"{source}: field '{field}': {path} holds a private key: the certificate file must "
                             "hold only certificates (the key goes in `key`)")
    fields = _openssl("x509", "-in", str(path), "-noout", "-subject", "-issuer", "-enddate", "-serial",
                      "-ext", "subjectAltName", "-nameopt", "RFC2253", what=str(path), field=field, source=source)
    pubkey = _openssl("x509", "-in", str(path), "-noout", "-pubkey", what=str(path), field=field, source=source)
    return text, cert_info(parse_x509_text(fields)), _public_key_digest(pubkey)


def check_local(state: State, base: Path, source: str) -> tuple[LocalTls | None, LocalAcme | None]:
    """The files `site.tls` names, checked (StateFileError, one line naming the field, when one is wrong)."""
    tls = state.site.tls
    if tls is None:
        return None, None
    if tls.acme is not None:
        bundle = ""
        if tls.acme.ca_bundle:
            field = "site.tls.acme.ca_bundle"
            path = _local_file(tls.acme.ca_bundle, base, field, source)
            bundle, _info, _key = read_certificate(path, field, source)
        return None, LocalAcme(ca_bundle=bundle)
    cert_path = _local_file(tls.certificate, base, "site.tls.certificate", source)
    key_path = _local_file(tls.key, base, "site.tls.key", source)
    text, info, cert_key = read_certificate(cert_path, "site.tls.certificate", source)
    key_bytes = key_path.read_bytes()
    if b"PRIVATE KEY-----" not in key_bytes:
        raise StateFileError(f"{source}: field 'site.tls.key': {key_path} holds no PEM private key")
    if b"ENCRYPTED" in key_bytes:
        raise StateFileError(f"{source}: field 'site.tls.key': {key_path} is encrypted: nginx needs it "
                             "unencrypted (openssl pkey -in KEY -out KEY.plain)")
    public = _openssl("pkey", "-in", str(key_path), "-pubout", "-passin", "pass:", what=str(key_path),
                      field="site.tls.key", source=source)
    if _public_key_digest(public) != cert_key:
        raise StateFileError(f"{source}: field 'site.tls.key': {key_path} is not the key of the certificate "
                             f"{cert_path} ({info.subject}): their public keys differ")
    return (LocalTls(certificate=text, info=info, key_path=str(key_path),
                     key_digest=hashlib.sha256(key_bytes).hexdigest(), public_key=cert_key,
                     checked_at=time.time()), None)


def covers(names: tuple[str, ...], server_name: str) -> bool:
    """Whether a certificate's DNS names cover a server name (one leading wildcard label, as TLS clients do)."""
    for name in names:
        if name == server_name:
            return True
        if name.startswith("*.") and server_name.count(".") == name.count(".") and \
                server_name.split(".", 1)[1] == name[2:] and not server_name.startswith("*."):
            return True
    return False
