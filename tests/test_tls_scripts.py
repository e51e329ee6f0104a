"""HTTPS's remote scripts, run here on real files in a tmp folder with fake nginx, systemctl and certbot on the
PATH (as tests/test_remote_scripts.py does): the key arrives on stdin and lands 0600; a configuration nginx
rejects brings both old files back; certbot gets one -d per name, the CA bundle and the deploy hook."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from test_remote_scripts import calls, stub

from pinned.operations.scripts import run_sh


def run(command, env: dict, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60,
                          input=stdin, env={**os.environ, **env})


@pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns to root")
def test_tls_install_puts_both_in_place_or_neither(tmp_path):
    bin_dir = tmp_path / "bin"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    stub(bin_dir, "systemctl", 'case "$1" in is-active) exit 0;; esac')
    cert, key = tmp_path / "tls" / "fullchain.pem", tmp_path / "tls" / "privkey.pem"
    cert.parent.mkdir()
    # nginx accepts: both in place, the key from stdin, 0600; the certificate 0644; nginx reloaded.
    stub(bin_dir, "nginx", "exit 0")
    Path(f"{cert}.pinned-tmp").write_text("CERT 1")
    result = run(run_sh("tls_install.sh", cert, key), env, stdin="KEY 1")
    assert result.returncode == 0, result.stderr
    assert (cert.read_text(), key.read_text()) == ("CERT 1", "KEY 1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert sorted(os.listdir(cert.parent)) == ["fullchain.pem", "privkey.pem"]
    assert "systemctl reload nginx" in calls(bin_dir)
    # nginx rejects the new pair: both old files back, nginx's words on stderr, no reload.
    stub(bin_dir, "nginx", 'echo "nginx: [emerg] key values mismatch"; exit 1')
    Path(f"{cert}.pinned-tmp").write_text("CERT 2")
    result = run(run_sh("tls_install.sh", cert, key), env, stdin="KEY 2")
    assert (result.returncode, result.stderr) == (1, "nginx: [emerg] key values mismatch\n")
    assert (cert.read_text(), key.read_text()) == ("CERT 1", "KEY 1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(os.listdir(cert.parent)) == ["fullchain.pem", "privkey.pem"]
    assert calls(bin_dir).count("systemctl reload nginx") == 1
    # no key on stdin: nothing changes
    Path(f"{cert}.pinned-tmp").write_text("CERT 3")
    assert run(run_sh("tls_install.sh", cert, key), env, stdin="").returncode != 0
    assert key.read_text() == "KEY 1"


def test_acme_issue_calls_certbot_with_each_name_the_bundle_and_the_deploy_hook(tmp_path):
    bin_dir = tmp_path / "bin"
    webroot, live = tmp_path / "acme", tmp_path / "live"
    stub(bin_dir, "certbot", f'echo "CA=$REQUESTS_CA_BUNDLE" >> "{bin_dir}/calls.log"')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = run_sh("acme_issue.sh", "pinned-shop", "ops@example.com", "https://acme.test/dir", webroot,
                     "/etc/pinned/shop/acme-ca.pem", "1", "shop.example.com", "www.shop.example.com")
    result = run(command, env)  # fails at its last check: the lineage is not in /etc/letsencrypt here
    assert result.returncode != 0
    certbot, ca = calls(bin_dir)
    assert certbot == ("certbot certonly --non-interactive --agree-tos --no-eff-email --email ops@example.com "
                       f"--server https://acme.test/dir --webroot --webroot-path {webroot} --cert-name pinned-shop "
                       "--deploy-hook systemctl reload nginx -d shop.example.com -d www.shop.example.com "
                       "--force-renewal")
    assert ca == "CA=/etc/pinned/shop/acme-ca.pem"
    assert (webroot / ".well-known" / "acme-challenge").is_dir() and not live.exists()
