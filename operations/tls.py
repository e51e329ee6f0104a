"""HTTPS on the web hosts: the uploaded certificate and key, the ACME certificate (certbot), removal."""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import logger
from pyinfra.api import FileUploadCommand, FunctionCommand, QuoteString, StringCommand, operation

from .connection import ChannelError, exchange
from .scripts import run_sh


def _send_key(state, host, key_source: str, key_digest: str, command: StringCommand) -> bool:
    """The local key file to `command`'s stdin (on its own channel): never a file in the host's /tmp, never a
    command line, never printed. A key that changed since the state file was checked is refused."""
    try:
        with open(key_source, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        logger.error(f"{host.print_prefix}cannot read the key {key_source}: {exc.strerror}")
        return False
    if hashlib.sha256(data).hexdigest() != key_digest:
        logger.error(f"{host.print_prefix}the key {key_source} changed since the plan was made: run again")
        return False
    try:
        exchange(host, command, send=data)
    except ChannelError as exc:
        logger.error(f"{host.print_prefix}installing the certificate and key failed: {exc}")
        return False
    return True


@operation()
def tls_files(certificate_path: str, certificate: str, key_path: str, key_source: str, key_digest: str):
    """Upload the certificate beside its place, send the key over stdin, put both in place together."""
    folders = dict.fromkeys(path.rsplit("/", 1)[0] for path in (certificate_path, key_path))
    yield StringCommand("mkdir", "-p", "-m", "0755", *(QuoteString(f) for f in folders))
    yield FileUploadCommand(StringIO(certificate), f"{certificate_path}.pinned-tmp")
    yield FunctionCommand(_send_key, (key_source, key_digest, run_sh("tls_install.sh", certificate_path, key_path)),
                          {})


@operation()
def certificate(cert_name: str, domains: tuple[str, ...], email: str, directory: str, webroot: str,
                ca_bundle: str = "", force: bool = False):
    """certbot certonly --webroot for the site's names (the nginx site serves the challenge from `webroot`)."""
    yield run_sh("acme_issue.sh", cert_name, email, directory, webroot, ca_bundle, "1" if force else "0", *domains)


@operation()
def tls_remove(paths: tuple[str, ...], cert_name: str = ""):
    yield run_sh("tls_remove.sh", cert_name, *paths)
