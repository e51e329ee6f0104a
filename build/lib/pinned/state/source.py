"""The source repository, read locally with git: commits, release ids, fingerprints, archives.

Releases are built on the machine that runs the deploy (never a git checkout on the server), so the
same pin gives the same release id and the same files on every host and every run.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .model import RUNTIME_REQUIREMENTS, State


class SourceError(Exception):
    """The repository or the pinned ref cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class Release:
    """A commit of the source, as a release: everything the plan needs to know about it."""

    commit: str
    committed_at: int  # unix time
    fingerprint: str  # of the Django migrations: equal fingerprints share a schema version
    requirements_hash: str  # names the shared virtualenv
    migrations: tuple[str, ...]  # app/migrations/xxxx.py paths, for the plan's text
    requirements: str = ""  # the requirements file's text (installed into the shared virtualenv)
    runtime: tuple[str, ...] = RUNTIME_REQUIREMENTS

    @property
    def id(self) -> str:
        return release_id(self.commit, self.committed_at)


def release_id(commit: str, committed_at: int) -> str:
    """`<commit time UTC>-<hash>`: the same on every host and every run."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(committed_at)) + "-" + commit[:12]


RELEASE_ID_RE = re.compile(r"\d{8}T\d{6}-[0-9a-f]{12}")  # used with fullmatch


def _git(repo: Path, *args: str, binary: bool = False) -> str | bytes:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env)
    if proc.returncode != 0:
        raise SourceError(proc.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
    return proc.stdout if binary else proc.stdout.decode()


def repository_path(state: State, state_file: Path) -> Path:
    """The local repository of the state file's `repository` (a path, or a URL mirrored locally)."""
    value = state.repository
    if re.match(r"^[a-z+]+://|^[\w.-]+@[\w.-]+:", value):
        cache = Path(os.environ.get("PINNED_CACHE", Path.home() / ".cache" / "pinned"))
        mirror = cache / "repos" / hashlib.sha256(value.encode()).hexdigest()[:16]
        if not (mirror / "HEAD").exists():
            mirror.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(["git", "clone", "--quiet", "--mirror", "--", value, str(mirror)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SourceError(f"cannot clone {value}: {proc.stderr.strip()}")
        return mirror
    path = (state_file.parent / value).resolve()
    if not path.exists():
        raise SourceError(f"repository {value!r} (resolved to {path}) does not exist")
    return path


def resolve(repo: Path, ref: str, fetch: bool = True) -> str:
    """The full commit hash of `ref` (hash, tag or branch); fetches once from a mirror's origin."""
    if ref.startswith("-"):
        raise SourceError(f"{ref!r} is not a git ref")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except SourceError:
        if fetch and (repo / "HEAD").exists() and not (repo / ".git").exists():
            subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "--tags", "origin"],
                           capture_output=True)
            return resolve(repo, ref, fetch=False)
        raise SourceError(f"{ref!r} is not a commit of {repo}") from None


def release(repo: Path, commit: str, state: State) -> Release:
    commit = resolve(repo, commit)
    committed_at = int(_git(repo, "show", "-s", "--format=%ct", commit).strip())
    project = state.django.project_dir
    listing = _git(repo, "ls-tree", "-r", "--full-tree", commit, *(["--", project] if project != "." else []))
    migrations: list[tuple[str, str]] = []
    for line in listing.splitlines():
        meta, _, path = line.partition("\t")
        parts = PurePosixPath(path).parts
        if len(parts) >= 2 and parts[-2] == "migrations" and path.endswith(".py") and parts[-1] != "__init__.py":
            migrations.append((path, meta.split()[2]))
    fingerprint = hashlib.sha256("".join(f"{p} {b}\n" for p, b in sorted(migrations)).encode()).hexdigest()
    req_path = str(PurePosixPath(project) / state.django.requirements)
    try:
        requirements = _git(repo, "show", f"{commit}:{req_path}", binary=True)
    except SourceError:
        raise SourceError(f"commit {commit[:12]} has no {req_path} (state file field django.requirements)")
    digest = hashlib.sha256(requirements + "\n".join(RUNTIME_REQUIREMENTS).encode()).hexdigest()
    return Release(commit=commit, committed_at=committed_at, fingerprint=fingerprint[:16],
                   requirements_hash=digest[:16], migrations=tuple(sorted(p for p, _ in migrations)),
                   requirements=requirements.decode())


def archive(repo: Path, rel: Release, state: State, dest_dir: Path, base: str | None = None) -> Path:
    """A gzipped tarball of the release's project folder (cached). With `base` (a commit), only the files
    that changed since it: the host builds the rest as hard links of the base release."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / (f"{state.app}-{rel.id}.tar.gz" if base is None
                      else f"{state.app}-{rel.id}-since-{base[:12]}.tar.gz")
    if not out.exists():
        project = state.django.project_dir
        tree = rel.commit if project == "." else f"{rel.commit}:{project}"
        paths = [] if base is None else list(delta(repo, base, rel, state).changed)
        data = _git(repo, "archive", "--format=tar.gz", tree, *(["--", *paths] if base is not None else []),
                    binary=True) if base is None or paths else _empty_targz()
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return out


def _empty_targz() -> bytes:
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w"):
        pass
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass(frozen=True)
class Delta:
    """What changed in the project folder between a base commit and a release."""

    base: str
    changed: tuple[str, ...]  # added or modified, relative to the project folder
    deleted: tuple[str, ...]


def delta(repo: Path, base: str, rel: Release, state: State) -> Delta:
    project = state.django.project_dir
    out = _git(repo, "diff", "--no-renames", "--name-status", "-z", base, rel.commit,
               *(["--", project] if project != "." else []))
    fields = out.split("\0")
    changed, deleted = [], []
    for status, path in zip(fields[0::2], fields[1::2]):
        if not path:
            continue
        relative = path if project == "." else str(PurePosixPath(path).relative_to(project))
        (deleted if status == "D" else changed).append(relative)
    return Delta(base, tuple(sorted(changed)), tuple(sorted(deleted)))


def transfer_sizes(repo: Path, rel: Release, state: State, bases: set[str], cache: Path) -> dict[str, dict]:
    """Bytes to send for the release: in full (key "") and as a delta from each base commit on a host."""
    whole = archive(repo, rel, state, cache)
    sizes = {"": {"bytes": whole.stat().st_size, "changed": None, "deleted": (), "archive": str(whole)}}
    for base in sorted(bases):
        try:
            d = delta(repo, base, rel, state)
        except SourceError:
            continue  # a base commit the repository no longer has: send the release whole
        since = archive(repo, rel, state, cache, base)
        sizes[base] = {"bytes": since.stat().st_size, "changed": len(d.changed), "deleted": d.deleted,
                       "replaced": d.changed + d.deleted, "archive": str(since)}
    return sizes
