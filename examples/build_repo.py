#!/usr/bin/env python3
"""Build a git repository of the agroguia example app with deterministic commits.

Usage: build_repo.py [--json] DEST

Creates a normal (non-bare) git repository at DEST with one commit per
release, each tagged with its release name: A to E in a line on branch
``main``, each holding the full tree of that release (the base app in
``examples/agroguia/`` with every overlay up to and including that release's
copied over it), and F, G and H on side branches off A (a release may name its parent:
its tree is the parent's with its own overlay; such releases come last).

Author, committer, dates, file modes and line endings are all fixed, so the
commit hashes are the same on every machine and every run. The expected
hashes are computed here in pure Python; if DEST already has tags pointing
at them nothing is done, otherwise DEST is removed and rebuilt.

To add a release: create ``examples/agroguia-releases/<TAG>/`` with the
files that change, and add one line to RELEASES.
"""

import datetime
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_DIR = os.path.join(HERE, "agroguia")
OVERLAYS_DIR = os.path.join(HERE, "agroguia-releases")

# (tag, commit date, overlay folder under OVERLAYS_DIR or None, commit message[, parent tag])
# Each release's tree is its parent's tree (default: the previous release) with its overlay copied over.
RELEASES = [
    ("A", "2026-11-20T10:00:00+00:00", None, "Release A: crop list, notes (POST /notes/), visits, health check"),
    ("B", "2026-11-21T10:00:00+00:00", "B", "Release B: new page heading (code only)"),
    ("C", "2026-11-22T10:00:00+00:00", "C", "Release C: add Crop.variety (schema change)"),
    ("D", "2026-11-23T10:00:00+00:00", "D", "Release D: health check answers 500 (broken on purpose)"),
    ("E", "2026-11-24T10:00:00+00:00", "E", "Release E: a migration that raises (broken on purpose)"),
    ("F", "2026-11-25T10:00:00+00:00", "F", "Release F: a slow migration on top of A (schema change)", "A"),
    ("G", "2026-11-26T10:00:00+00:00", "G", "Release G: A on Django 6 (needs Python >= 3.12)", "A"),
    ("H", "2026-11-27T10:00:00+00:00", "H", "Release H: A whose main page answers 500 (broken on purpose; its health "
     "check passes)", "A"),
]

AUTHOR_NAME = "Agroguia Example"
AUTHOR_EMAIL = "example@agroguia.invalid"
BRANCH = "main"

EXCLUDE_DIRS = {"__pycache__", ".git"}
EXCLUDE_FILES = ["*.pyc", "db.sqlite3"]
# Paths (relative, "/"-separated) committed as 100755; everything else is 100644.
EXECUTABLE = {"manage.py"}

GIT_CONFIG = [
    "-c", "init.defaultBranch=" + BRANCH,
    "-c", "commit.gpgsign=false",
    "-c", "tag.gpgsign=false",
    "-c", "core.autocrlf=false",
    "-c", "user.useConfigOnly=false",
]


# ---------------------------------------------------------------- file trees

def read_tree(root):
    """Return {relpath: bytes} for the files under root, minus excluded ones."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE_DIRS)
        for name in sorted(filenames):
            if any(fnmatch.fnmatch(name, pat) for pat in EXCLUDE_FILES):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                data = f.read()
            if b"\0" not in data:
                # Text: normalise line endings so a CRLF checkout gives the same hash.
                data = data.replace(b"\r\n", b"\n")
            files[rel] = data
    return files


def parent_tag(i):
    """The tag of release i's parent (None for the first): its 5th field, else the previous release."""
    if i == 0:
        return None
    entry = RELEASES[i]
    return entry[4] if len(entry) > 4 else RELEASES[i - 1][0]


def release_trees():
    """Yield (tag, date, message, {relpath: bytes}, parent tag) for each release in order."""
    if not os.path.isdir(BASE_DIR):
        sys.exit("build_repo.py: missing base app folder %s" % BASE_DIR)
    trees = {}
    for i, (tag, date, overlay, message, *_) in enumerate(RELEASES):
        parent = parent_tag(i)
        files = read_tree(BASE_DIR) if parent is None else trees[parent]
        if overlay is not None:
            overlay_dir = os.path.join(OVERLAYS_DIR, overlay)
            if not os.path.isdir(overlay_dir):
                sys.exit("build_repo.py: missing overlay folder %s" % overlay_dir)
            files = dict(files)
            files.update(read_tree(overlay_dir))
        trees[tag] = files
        yield tag, date, message, files, parent


def file_mode(rel):
    return "100755" if rel in EXECUTABLE else "100644"


def git_date(date):
    """ISO 8601 date -> (git raw date "EPOCH +HHMM", datetime in UTC)."""
    dt = datetime.datetime.fromisoformat(date)
    if dt.tzinfo is None:
        raise ValueError("release date needs a UTC offset: %r" % date)
    minutes = int(dt.utcoffset().total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    offset = "%s%02d%02d" % (sign, abs(minutes) // 60, abs(minutes) % 60)
    return "%d %s" % (int(dt.timestamp()), offset), dt.astimezone(datetime.timezone.utc)


# -------------------------------------------- git object hashes (pure Python)

def _object_id(kind, body):
    return hashlib.sha1(b"%s %d\0" % (kind, len(body)) + body).hexdigest()


def _subtree_id(files, prefix):
    """Git tree id for the files whose paths start with prefix ("" = root)."""
    entries = {}  # name -> ("blob", mode, data) or ("tree", {fullpath: data})
    for rel, data in files.items():
        rest = rel[len(prefix):]
        head, sep, _ = rest.partition("/")
        if sep:
            entries.setdefault(head, ("tree", {}))[1][rel] = data
        else:
            entries[head] = ("blob", file_mode(rel), data)
    # Git sorts entries by name, comparing a tree's name as if it ended in "/".
    def sort_key(name):
        return name.encode() + (b"/" if entries[name][0] == "tree" else b"")
    body = b""
    for name in sorted(entries, key=sort_key):
        entry = entries[name]
        if entry[0] == "tree":
            mode, oid = "40000", _subtree_id(entry[1], prefix + name + "/")
        else:
            mode, oid = entry[1], _object_id(b"blob", entry[2])
        body += b"%s %s\0" % (mode.encode(), name.encode()) + bytes.fromhex(oid)
    return _object_id(b"tree", body)


def expected_commits():
    """[(tag, commit id, utc datetime)] computed without running git."""
    result = []
    ids = {}
    for tag, date, message, files, parent in release_trees():
        raw_date, utc = git_date(date)
        ident = "%s <%s> %s" % (AUTHOR_NAME, AUTHOR_EMAIL, raw_date)
        body = "tree %s\n" % _subtree_id(files, "")
        if parent:
            body += "parent %s\n" % ids[parent]
        body += "author %s\ncommitter %s\n\n%s\n" % (ident, ident, message.strip())
        ids[tag] = _object_id(b"commit", body.encode())
        result.append((tag, ids[tag], utc))
    return result


# ------------------------------------------------------------------- git runs

def git_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
        "LC_ALL": "C",
    })
    env.update(extra or {})
    return env


def git(dest, *args, env=None, check=True):
    cmd = ["git"] + GIT_CONFIG + (["-C", dest] if dest else []) + list(args)
    proc = subprocess.run(cmd, env=env or git_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if check and proc.returncode != 0:
        sys.exit("build_repo.py: %s failed:\n%s" % (" ".join(cmd), proc.stderr))
    return proc


def existing_tags(dest):
    """{tag: commit id} for DEST's release tags, or None if DEST is no git repo."""
    if not os.path.exists(os.path.join(dest, ".git")):
        return None
    tags = {}
    for tag, *_ in RELEASES:
        proc = git(dest, "rev-parse", "--verify", "-q", "refs/tags/%s^{commit}" % tag,
                   check=False)
        tags[tag] = proc.stdout.strip() if proc.returncode == 0 else None
    return tags


def remove_dest(dest):
    if not os.path.lexists(dest):
        return
    if os.path.isdir(dest) and not os.path.islink(dest):
        if os.listdir(dest) and not os.path.exists(os.path.join(dest, ".git")):
            sys.exit("build_repo.py: refusing to remove %s: not empty and not a git "
                     "repository" % dest)
        def make_writable(func, path, _exc):
            os.chmod(path, 0o700)
            func(path)
        shutil.rmtree(dest, onerror=make_writable)
    else:
        os.remove(dest)


def write_tree(dest, files):
    """Make DEST's working tree (everything but .git) exactly `files`."""
    for name in os.listdir(dest):
        if name == ".git":
            continue
        path = os.path.join(dest, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    for rel, data in sorted(files.items()):
        path = os.path.join(dest, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755 if file_mode(rel) == "100755" else 0o644)


def build(dest):
    remove_dest(dest)
    git(None, "init", "-q", dest)
    git(dest, "symbolic-ref", "HEAD", "refs/heads/" + BRANCH)
    previous = None
    for tag, date, message, files, parent in release_trees():
        raw_date, _ = git_date(date)
        if parent is not None and parent != previous:  # a branch: commit on top of its parent
            git(dest, "checkout", "-q", "--detach", parent)
        write_tree(dest, files)
        git(dest, "add", "-A", ".")
        # Force the index modes in case the filesystem ignores exec bits.
        for rel in sorted(files):
            flag = "+x" if file_mode(rel) == "100755" else "-x"
            git(dest, "update-index", "--chmod=" + flag, "--", rel)
        env = git_env({"GIT_AUTHOR_DATE": raw_date, "GIT_COMMITTER_DATE": raw_date})
        git(dest, "commit", "-q", "--no-verify", "--allow-empty", "-m", message, env=env)
        git(dest, "tag", "-f", tag, "HEAD")
        previous = tag
    git(dest, "checkout", "-q", BRANCH)


# ----------------------------------------------------------------------- main

def main(argv):
    args = [a for a in argv if a != "--json"]
    as_json = len(args) != len(argv)
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: build_repo.py [--json] DEST\n")
        return 2
    dest = os.path.abspath(args[0])

    expected = expected_commits()
    wanted = {tag: commit for tag, commit, _ in expected}
    if existing_tags(dest) != wanted:
        build(dest)
        got = existing_tags(dest)
        if got != wanted:
            sys.exit("build_repo.py: commits differ from the expected ones\n"
                     "expected: %r\ngot:      %r" % (wanted, got))

    if as_json:
        out = {tag: {"commit": commit, "time": utc.strftime("%Y%m%dT%H%M%S")}
               for tag, commit, utc in expected}
        print(json.dumps(out, indent=2))
    else:
        for tag, commit, utc in expected:
            print("%s %s %s" % (tag, commit, utc.strftime("%Y%m%dT%H%M%S")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
