"""The source repository, read locally with git: commits, release ids, fingerprints, archives.

Releases are built on the machine that runs the deploy (never a git checkout on the server), so the
same pin gives the same release id and the same files on every host and every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import tomllib
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
    requires_python: str = ""  # `requires-python` of the project's pyproject.toml, if it has one
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
    """The full commit hash of `ref` (hash, tag or branch); fetches once from a mirror's origin, and a full
    commit hash that a shallow clone lacks (CI's `git clone --depth 1`) from its origin, that commit only."""
    if ref.startswith("-"):
        raise SourceError(f"{ref!r} is not a git ref")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except SourceError:
        if fetch and (repo / "HEAD").exists() and not (repo / ".git").exists():
            subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "--tags", "origin"],
                           capture_output=True)
            return resolve(repo, ref, fetch=False)
        if fetch and re.fullmatch(r"[0-9a-f]{40}", ref) and _shallow(repo):
            subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "--depth", "1", "origin", ref],
                           capture_output=True)
            return resolve(repo, ref, fetch=False)
        raise SourceError(f"{ref!r} is not a commit of {repo}") from None


def _shallow(repo: Path) -> bool:
    try:
        return _git(repo, "rev-parse", "--is-shallow-repository").strip() == "true"
    except SourceError:
        return False


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
    link_conflicts(listing, project, state, commit)
    req_path = str(PurePosixPath(project) / state.django.requirements)
    try:
        requirements = _git(repo, "show", f"{commit}:{req_path}", binary=True)
    except SourceError:
        raise SourceError(f"commit {commit[:12]} has no {req_path} (state file field django.requirements)")
    digest = hashlib.sha256(requirements + "\n".join(RUNTIME_REQUIREMENTS).encode()).hexdigest()
    return Release(commit=commit, committed_at=committed_at, fingerprint=fingerprint[:16],
                   requirements_hash=digest[:16], migrations=tuple(sorted(p for p, _ in migrations)),
                   requirements=requirements.decode(errors="replace"),
                   requires_python=requires_python(repo, commit, project))


def link_conflicts(listing: str, project: str, state: State, commit: str) -> None:
    """A link a release would get (`shared:` link, `scratch:`) where the commit has a file or folder would
    hide committed code: refused here, before any host is contacted (build_links.sh refuses it too)."""
    if not state.links:
        return
    files = set()
    for line in listing.splitlines():
        path = line.partition("\t")[2]
        files.add(path if project == "." else str(PurePosixPath(path).relative_to(project)))
    for link in state.links:
        parents = [str(PurePosixPath(*PurePosixPath(link).parts[:n])) for n in range(1, len(PurePosixPath(link).parts))]
        hit = next((f for f in sorted(files) if f == link or f.startswith(link + "/") or f in parents), None)
        if hit:
            field = "scratch" if state.links[link] == "" else "shared"
            raise SourceError(f"commit {commit[:12]} has {hit}, where {link} would be a link (state file field "
                              f"{field}): remove it from the repository (a .gitignore'd folder), or link another path")


def requires_python(repo: Path, commit: str, project: str) -> str:
    """`[project] requires-python` of the pyproject.toml in the project folder (else the repository's
    root), or "" when there is none. A file that is not TOML, or names no such field, says nothing."""
    for folder in dict.fromkeys((project, ".")):
        try:
            text = _git(repo, "show", f"{commit}:{PurePosixPath(folder) / 'pyproject.toml'}", binary=True)
        except SourceError:
            continue
        try:
            value = tomllib.loads(text.decode(errors="replace")).get("project", {}).get("requires-python", "")
        except (tomllib.TOMLDecodeError, AttributeError):
            return ""
        return value.strip() if isinstance(value, str) else ""
    return ""


def tree_files(repo: Path, commit: str, state: State) -> dict[str, str]:
    """The release's files as the commit has them: {path in the project folder: "<mode> <blob id>"}, from
    `git ls-tree` (needs only the commit's tree: a shallow clone of it has it). Submodules are left out, as
    `git archive` leaves them out. The host's `.pinned/files.json` (operations/remote/release_files.py) holds
    the same for the release built from it."""
    project = state.django.project_dir
    tree = commit if project == "." else f"{commit}:{project}"
    out = _git(repo, "ls-tree", "-r", "-z", tree, binary=True)
    files = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind == "blob":
            files[os.fsdecode(path)] = f"{mode} {oid}"
    return files


FILE_ENTRY = re.compile(r"(100644|100755|120000) [0-9a-f]{40}([0-9a-f]{24})?")  # sha1 or sha256 repositories


def manifest_text(files: dict[str, str]) -> str:
    """The canonical text of a release's files (what release_files.py prints and writes)."""
    return json.dumps(files, sort_keys=True, separators=(",", ":"))


def manifest_digest(files: dict[str, str]) -> str:
    """What a host records of a release's files in its metadata (`files`): a hash of the canonical text."""
    return hashlib.sha256(manifest_text(files).encode()).hexdigest()[:16]


def parse_manifest(text: str | None) -> dict[str, str] | None:
    """A release's files as a host printed them (release_files.py show), or None if that is not a manifest
    (an error it reported, no output, anything malformed): the release is then sent whole."""
    try:
        files = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(files, dict) or not all(
            isinstance(p, str) and p and isinstance(e, str) and FILE_ENTRY.fullmatch(e) for p, e in files.items()):
        return None
    return files


def known_files(repo: Path, commit: str, state: State, digest: str = "") -> dict[str, str] | None:
    """A base release's files as the local repository says them, if it has the commit and agrees with the
    digest the host recorded when it built the release (none recorded: a release built before pinned kept
    one, trusted as before). None: ask the host (a shallow or fresh clone without that commit)."""
    try:
        files = tree_files(repo, commit, state)
    except SourceError:
        return None
    return files if not digest or manifest_digest(files) == digest else None


@dataclass(frozen=True)
class Delta:
    """What differs in the project folder between a base release's files and a release's."""

    changed: tuple[str, ...]  # added or modified (content, mode or type), relative to the project folder
    deleted: tuple[str, ...]  # in the base, not in the release
    added: tuple[str, ...] = ()  # of `changed`, those the base does not have

    @property
    def replaced(self) -> tuple[str, ...]:
        """The base's hard links the build removes (then extracts the changed files anew)."""
        return self.changed + self.deleted


def compare(base: dict[str, str], new: dict[str, str]) -> Delta:
    """Pure: the files to send and to drop for a release built from `base`'s files as hard links. The same
    paths as `git diff --no-renames --name-status BASE NEW` when both manifests come from git."""
    changed = sorted(p for p, entry in new.items() if base.get(p) != entry)
    deleted = sorted(p for p in base if p not in new)
    return Delta(tuple(changed), tuple(deleted), tuple(p for p in changed if p not in base))


def archive(repo: Path, rel: Release, state: State, dest_dir: Path, paths: tuple[str, ...] | None = None) -> Path:
    """A gzipped tarball of the release's project folder (cached), or of only `paths` in it (a delta: the host
    builds the rest as hard links of its base release). Named by what it holds, so the cache never serves
    another delta's archive."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if paths is None:
        out = dest_dir / f"{state.app}-{rel.id}.tar.gz"
    else:
        which = hashlib.sha256("\0".join(paths).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        out = dest_dir / f"{state.app}-{rel.id}-delta-{which}.tar.gz"
    if not out.exists():
        project = state.django.project_dir
        tree = rel.commit if project == "." else f"{rel.commit}:{project}"
        data = (_git(repo, "archive", "--format=tar.gz", tree, *(["--", *paths] if paths is not None else []),
                     binary=True) if paths is None or paths else _empty_targz())
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
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


def transfer_sizes(repo: Path, rel: Release, state: State, bases: dict[str, tuple[str, dict[str, str] | None]],
                   cache: Path) -> dict[str, dict]:
    """Bytes to send for the release: in full (key "") and, for each web host (key: its name) whose base
    release's files are known (`bases`: host → (base release id, its files or None)), as a delta from it."""
    whole = archive(repo, rel, state, cache)
    sizes = {"": {"bytes": whole.stat().st_size, "changed": None, "deleted": (), "archive": str(whole)}}
    new = tree_files(repo, rel.commit, state) if any(files is not None for _, files in bases.values()) else {}
    for host, (base_id, files) in sorted(bases.items()):
        if files is None:
            continue  # nothing tells what the host has: send the release whole
        d = compare(files, new)
        since = archive(repo, rel, state, cache, d.changed)
        sizes[host] = {"base": base_id, "bytes": since.stat().st_size, "changed": len(d.changed),
                       "deleted": d.deleted, "replaced": d.replaced, "added": d.added,
                       "archive": str(since)}
    return sizes
