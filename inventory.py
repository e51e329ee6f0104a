"""The hosts of the environment, as pyinfra groups `web` and `db` (one host may be in both).

By default: the running sandbox hosts (`python -m sandbox up`, described in its hosts.json).
For your own servers, replace the two lists below, e.g.:

    web = [("app1.example.com", {"ssh_user": "deploy", "_sudo": True})]
    db = ["app1.example.com"]

Before pyinfra connects to anything, the state file of the selected environment is validated here
(with its repository and pinned commit): a bad one stops the run with one message and no host contacted.
"""

import os
import sys

from pinned.sandbox.core import Sandbox, SandboxError, prefix
from pinned.state.check import check_or_exit

check_or_exit(sys.argv, os.environ)

try:
    _sandbox = Sandbox.load(prefix())
except SandboxError as exc:
    sys.exit(f"pinned: {exc}")
if _sandbox is None:
    sys.exit(f"pinned: no sandbox hosts are running (prefix {prefix()}): run `make demo` or "
             "`python -m sandbox up`, or list your own hosts in inventory.py")


def _hosts(role):
    return [
        (h.name, {"ssh_hostname": h.address, "address": h.address, "ssh_user": "root", "ssh_key": _sandbox.ssh_key,
                  "ssh_known_hosts_file": "/dev/null", "ssh_strict_host_key_checking": "off"})
        for h in _sandbox.hosts if role in h.roles
    ]


web = _hosts("web")
db = _hosts("db")
