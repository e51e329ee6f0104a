# Record what a release's service was just (re)started with: python3 -c TEXT LOADED SECRETS_FILE ENV_JSON.
# LOADED gets {"env": ENV_JSON (the env's fingerprints, from the plan), "secrets": {name: fingerprint}} for
# every name in SECRETS_FILE: the same keyed fingerprints as the observe script's (HMAC-SHA256 with the
# site's SECRET_KEY), never a value. Written beside it, then renamed. Runs ON the host, as root.
import json
import os
import sys

from secrets_lib import secret_fingerprints, secret_pairs

loaded, secrets_file, env = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with open(secrets_file, "rb") as handle:
    record = {"env": env, "secrets": secret_fingerprints(secret_pairs(handle.read()))}
tmp = loaded + ".pinned-tmp"
with open(tmp, "w") as handle:
    json.dump(record, handle, sort_keys=True)
os.chmod(tmp, 0o644)
os.rename(tmp, loaded)
