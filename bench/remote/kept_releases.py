# On the host (python3, as root): make the kept releases of a layout and remove those of no layout. A release
# is a hard-linked copy (`cp -al`, as the host builds a release from the served one) of a real built one — A
# for schema version 0, C for the others — with its own .pinned/release.json (id, commit, schema, fingerprint,
# built_at), pinned_settings.py naming its schema version's database, its by-id link; each schema version has
# its schema.json, `served` and `last` (its newest release). Their units are instances of the templates
# <app>@.socket/.service: a stopped release has no unit file and no wants link of its own. Prints the releases
# on disk per schema version.
#
#   python3 -c TEXT SPEC_JSON   (bench/__main__.py kept_layout; runs ON the host, as root: standard library only)
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

spec = json.loads(sys.argv[1])
root, store, app, layout = spec["root"], spec["store"], spec["app"], spec["layout"]
a_id, c_id = spec["a"], spec["c"]
RID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{12}$")

def fake(n, k):
    commit = hashlib.sha1(("pinned-bench-kept %d %d" % (n, k)).encode()).hexdigest()
    when = datetime.datetime(2025, 1, 1) + datetime.timedelta(minutes=1000 * n + k)
    return when.strftime("%Y%m%dT%H%M%S") + "-" + commit[:12], commit, when

def rewrite(path, text):  # a hard-linked file: a new file in its place, never the original's content
    os.unlink(path)
    with open(path, "w") as handle:
        handle.write(text)

def schema_info(n):
    with open(store + "/schema1.json") as handle:
        info = json.load(handle)
    if n >= 2:
        info.update(schema=n, database="%s_v%d" % (app, n), copied_from=1,
                    fingerprint=hashlib.sha1(("pinned-bench-schema %d" % n).encode()).hexdigest()[:16])
    return info

templates = {0: root + "/versions/0/" + a_id, 1: store + "/C"}
wanted = {}
known = {c_id}
for n in range(4):
    count = layout[n]
    real = 1 if n in (0, 1) and count else 0
    if n == 1 and count:
        wanted[c_id] = (1, None)
    for k in range(200):
        rid, commit, when = fake(n, k)
        known.add(rid)
        if k < count - real:
            wanted[rid] = (n, (commit, when))
for n in range(4):
    folder = "%s/versions/%d" % (root, n)
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        if entry in known and entry not in wanted:
            shutil.rmtree(folder + "/" + entry)
            if os.path.lexists(root + "/by-id/" + entry):
                os.unlink(root + "/by-id/" + entry)
for n in range(1, 4):
    folder = "%s/versions/%d" % (root, n)
    if layout[n]:
        os.makedirs(folder, exist_ok=True)
        with open(folder + "/schema.json", "w") as handle:
            json.dump(schema_info(n), handle, sort_keys=True)
        open(folder + "/served", "a").close()
    elif os.path.isdir(folder):
        left = [e for e in os.listdir(folder) if e not in ("schema.json", "served", "last")]
        if left:
            sys.exit("refusing to remove %s: it holds %s" % (folder, left))
        shutil.rmtree(folder)
for rid, (n, made) in sorted(wanted.items()):
    dst = "%s/versions/%d/%s" % (root, n, rid)
    if not os.path.isdir(dst):
        template = templates[min(n, 1)]
        tmp = "%s/versions/%d/.%s.bench" % (root, n, rid)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["cp", "-al", template, tmp], check=True)
        if made is not None:
            commit, when = made
            with open(template + "/.pinned/release.json") as handle:
                meta = json.load(handle)
            meta.update(id=rid, commit=commit, schema=n, built_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        fingerprint=schema_info(n)["fingerprint"] if n else meta["fingerprint"])
            rewrite(tmp + "/.pinned/release.json", json.dumps(meta, sort_keys=True))
            if n >= 2:  # its own schema version's database
                with open(tmp + "/pinned_settings.py") as handle:
                    text = handle.read()
                rewrite(tmp + "/pinned_settings.py", text.replace('"%s_v1"' % app, '"%s_v%d"' % (app, n)))
        os.rename(tmp, dst)
    link = root + "/by-id/" + rid
    if not os.path.lexists(link):
        os.symlink("../versions/%d/%s" % (n, rid), link)
for n in range(1, 4):
    if layout[n]:
        newest = max(rid for rid, (m, _) in wanted.items() if m == n)
        last = "%s/versions/%d/last" % (root, n)
        if not os.path.islink(last) or os.readlink(last) != newest:
            os.symlink(newest, last + ".bench")
            os.rename(last + ".bench", last)
on_disk = {}
for n in range(4):
    folder = "%s/versions/%d" % (root, n)
    if os.path.isdir(folder):
        on_disk[str(n)] = sum(1 for e in os.listdir(folder) if RID.match(e) and os.path.isdir(folder + "/" + e))
links = sum(1 for e in os.listdir(root + "/by-id") if RID.match(e))
print(json.dumps({"on_disk": on_disk, "by_id": links}))
