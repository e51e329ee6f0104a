"""The hosts of the environment, as pyinfra groups `web` and `db` (one host may be in both).

They come from the selected environment's state file (`<env>.yaml` in the current folder or
PINNED_STATE_DIR; the environment: `--data env=NAME`, else PINNED_ENV, else `sandbox`):

    hosts:
      web: [www1.example.com, {name: www2.example.com, ssh_user: deploy, ssh_port: 2222}]
      db: db1.example.com
    ssh: {user: deploy, key: ~/.ssh/deploy_ed25519, proxy_jump: bastion.example.com}

`hosts: sandbox` takes the running sandbox's hosts (the demo's `sandbox.yaml`): only then is the sandbox
imported. The state file — hosts, repository and pinned commit — is validated here, before pyinfra
connects to anything: a bad one stops the run with one message and no host contacted. A host pyinfra then
cannot connect to is one line too (pinned/connect.py), and no host is changed.
"""

import os
import sys

from pinned.connect import watch
from pinned.state.check import check_or_exit, hosts_or_exit

_checked = check_or_exit(sys.argv, os.environ)
_groups = hosts_or_exit(_checked)
watch(_groups)
web = _groups["web"]
db = _groups["db"]
