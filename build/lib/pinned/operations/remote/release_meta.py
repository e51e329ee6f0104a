# Sets fields of a release's metadata: python3 -c "$RELEASE_META" RELEASE_DIR key=value ... (atomic write:
# the new document is written beside it, then renamed over it). Runs ON the host: standard library only.
import json
import os
import sys

path = sys.argv[1] + "/.pinned/release.json"
with open(path) as handle:
    meta = json.load(handle)
meta.update(arg.split("=", 1) for arg in sys.argv[2:])
with open(path + ".tmp", "w") as handle:
    json.dump(meta, handle, sort_keys=True)
os.replace(path + ".tmp", path)
