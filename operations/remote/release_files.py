# A release's files as git names them: {path: "<mode> <blob id>"} for every file of the release's code, with
# git's modes (100644, 100755 when the owner may run it, 120000 a symlink) and git's blob ids (SHA-1 of
# "blob <size>\0" + the content; a symlink's content is its target), printed as one canonical JSON line
# (keys sorted, no spaces): the same text state/source.py makes from `git ls-tree` of the release's commit.
# pinned's own files are not the release's code: assets/, .pinned/, .venv, pinned_settings.py and
# pinned_runtime.py at the top, and the links listed in .pinned/links (build_links.sh). Runs ON the host:
# standard library only, as root.
#
#   python3 -c "$RELEASE_FILES" write RELEASE_DIR   computes it, writes RELEASE_DIR/.pinned/files.json (atomic),
#                                                   prints its digest (the first 16 hex of its SHA-256)
#   python3 -c "$RELEASE_FILES" show RELEASE_DIR    prints .pinned/files.json, or computes it for a release built
#                                                   before pinned wrote one (nothing written); always exits 0: a
#                                                   failure prints {"error": "..."} (the deploy then sends the
#                                                   release whole)
import hashlib
import json
import os
import stat
import sys

OWN = {"assets", ".pinned", ".venv", "pinned_settings.py", "pinned_runtime.py"}


def blob_id(data_or_path, size=None):
    digest = hashlib.sha1()
    if size is None:  # bytes (a symlink's target)
        digest.update(b"blob %d\0" % len(data_or_path) + data_or_path)
        return digest.hexdigest()
    digest.update(b"blob %d\0" % size)
    with open(data_or_path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def links(top):
    try:
        with open(os.path.join(top, ".pinned", "links")) as handle:
            return {line.strip() for line in handle if line.strip()}
    except FileNotFoundError:
        return set()


def compute(top):
    files = {}
    own_links = links(top)
    pending = [""]
    while pending:
        folder = pending.pop()
        for name in sorted(os.listdir(os.path.join(top, folder) if folder else top)):
            if not folder and name in OWN:
                continue
            rel = folder + "/" + name if folder else name
            if rel in own_links:
                continue
            path = os.path.join(top, rel)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                files[rel] = "120000 " + blob_id(os.fsencode(os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                pending.append(rel)
            elif stat.S_ISREG(st.st_mode):
                mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
                files[rel] = mode + " " + blob_id(path, st.st_size)
    return files


def text(files):
    return json.dumps(files, sort_keys=True, separators=(",", ":"))


def main(action, top):
    saved = os.path.join(top, ".pinned", "files.json")
    if action == "write":
        body = text(compute(top))
        with open(saved + ".tmp", "w") as handle:
            handle.write(body + "\n")
        os.replace(saved + ".tmp", saved)
        print(hashlib.sha256(body.encode()).hexdigest()[:16])
        return 0
    try:
        try:
            with open(saved) as handle:
                body = handle.read().strip()
        except FileNotFoundError:
            body = text(compute(top))
    except Exception as exc:  # reported, never fatal: the release is then sent whole
        body = json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)})
    print(body)
    return 0


sys.exit(main(sys.argv[1], sys.argv[2]))
