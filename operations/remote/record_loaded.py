# Record what a release's service was just (re)started with: python3 -c TEXT LOADED SECRETS_FILE ENV_JSON.
# LOADED gets {"env": ENV_JSON (the env's fingerprints, from the plan), "secrets": {name: fingerprint}} for
# every name in SECRETS_FILE: the same keyed fingerprints as the observe script's (HMAC-SHA256 with the
# site's SECRET_KEY), never a value. Written beside it, then renamed. Runs ON the host, as root.
import hashlib
import hmac
import json
import os
import sys

loaded, secrets_file, env = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with open(secrets_file, "rb") as handle:
    pairs = [line.split(b"=", 1) for line in handle.read().splitlines() if b"=" in line and not line.startswith(b"#")]
key = dict(pairs).get(b"SECRET_KEY", b"")
record = {"env": env, "secrets": {name.decode(): hmac.new(key, name + b"=" + value, hashlib.sha256).hexdigest()[:12]
                                  for name, value in pairs}}
tmp = loaded + ".pinned-tmp"
with open(tmp, "w") as handle:
    json.dump(record, handle, sort_keys=True)
os.chmod(tmp, 0o644)
os.rename(tmp, loaded)
