"""Which Python a release's requirements need, and whether a web host's python3 is new enough (pure).

The release's virtualenv is made with the host's own `python3`, so a host whose Python is older than the
requirements allow would end the deploy in a pip traceback ("No matching distribution found for
Django>=6.0"). The plan blocks instead, with one line naming the host, its Python and what needs more:

* Django's own floor, read from the requirements file's Django specifier: the lowest Django series the
  specifier allows decides (pip picks the newest Django the host's Python can run, so `Django>=5.0` on
  Python 3.11 installs 5.2 and needs nothing more);
* `requires-python` of the project's `pyproject.toml`, when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# Each Django feature release and the oldest Python it supports (Django's release notes).
DJANGO_PYTHON: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((3, 2), (3, 6)),
    ((4, 0), (3, 8)), ((4, 1), (3, 8)), ((4, 2), (3, 8)),
    ((5, 0), (3, 10)), ((5, 1), (3, 10)), ((5, 2), (3, 10)),
    ((6, 0), (3, 12)), ((6, 1), (3, 12)),
)
# The python3 of each Debian release pinned supports, oldest first (what the advice offers).
DEBIAN_PYTHON = (("Debian 12", "3.11.2"), ("Debian 13", "3.13.5"))
_PATCHES = 60  # patch releases tried per Django series (4.2 has 30 so far)


@dataclass(frozen=True)
class DjangoRequirement:
    line: str  # as written in the requirements file (comment stripped), e.g. `Django>=6.0,<7`
    specifier: SpecifierSet


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _series_text(series: tuple[int, int]) -> str:
    return f"{series[0]}" if series[1] == 0 else f"{series[0]}.{series[1]}"


def logical_lines(requirements: str) -> list[str]:
    """The requirements file's lines with comments removed and `\\` continuations joined."""
    lines, pending = [], ""
    for raw in requirements.splitlines():
        text = raw.split(" #", 1)[0].split("\t#", 1)[0]
        text = "" if text.lstrip().startswith("#") else text.rstrip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text, pending = (pending + text).strip(), ""
        if text:
            lines.append(text)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def django_requirements(requirements: str, python: str) -> list[DjangoRequirement]:
    """The requirements file's Django lines that apply on a host with this Python (markers evaluated with
    its version). Options (`-r`, `-e`, `--hash` …) and lines that are not requirements are not Django's."""
    env = {**default_environment(), "python_version": ".".join(python.split(".")[:2]),
           "python_full_version": python}
    found = []
    for line in logical_lines(requirements):
        if line.startswith("-"):
            continue
        text = line.split(" --", 1)[0].strip()  # per-requirement options such as --hash
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) != "django" or req.url:
            continue
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        found.append(DjangoRequirement(text.split(";", 1)[0].strip(), req.specifier))
    return found


def allowed_series(specifier: SpecifierSet) -> list[tuple[int, int]]:
    """The known Django series of which the specifier allows at least one version (pre-releases too)."""
    allowed = []
    for series, _python in DJANGO_PYTHON:
        base = f"{series[0]}.{series[1]}"
        candidates = [f"{base}{pre}" for pre in ("a1", "b1", "rc1")] + [f"{base}.{p}" for p in range(_PATCHES)]
        if any(specifier.contains(v, prereleases=True) for v in candidates):
            allowed.append(series)
    return allowed


def allows_newer_than_known(specifier: SpecifierSet) -> bool:
    """The specifier allows a Django newer than the last series in DJANGO_PYTHON."""
    last = DJANGO_PYTHON[-1][0]
    newer = [(last[0], last[1] + m) for m in range(1, 10)] + [(last[0] + n, m) for n in range(1, 4) for m in range(10)]
    return any(specifier.contains(f"{a}.{b}.{p}", prereleases=True) for a, b in newer for p in (0, 1, 5))


def django_floor(specifier: SpecifierSet) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(the oldest Django series the specifier allows, the oldest Python that series supports); a
    specifier that allows only newer series than known gets the newest known floor (never lower); one
    that allows no known or newer series (Django < 3.2 only) has no floor here."""
    series = allowed_series(specifier)
    if series:
        return series[0], dict(DJANGO_PYTHON)[series[0]]
    if allows_newer_than_known(specifier):
        newest, python = DJANGO_PYTHON[-1]
        return (newest[0], newest[1] + 1), python
    return None


def newest_django_for(python: tuple[int, int]) -> tuple[int, int] | None:
    """The newest known Django series that supports this Python."""
    fitting = [series for series, floor in DJANGO_PYTHON if floor <= python]
    return fitting[-1] if fitting else None


def python_too_old(host: str, python: str, requirements: str, requires_python: str = "") -> str | None:
    """The one line that blocks the plan when `python` (the host's python3, e.g. `3.11.2`) is older than
    the release's requirements need, or None when it is new enough (or its version is unknown)."""
    version = _version(python)
    if version is None:
        return None
    major_minor = (version.major, version.minor)
    needs: list[str] = []
    pin_below: tuple[int, int] | None = None
    checks: list[SpecifierSet] = []
    for req in django_requirements(requirements, python):
        floor = django_floor(req.specifier)
        if floor is None or floor[1] <= major_minor:
            continue
        needs.append(f"{req.line} needs Python >= {floor[1][0]}.{floor[1][1]}")
        checks.append(SpecifierSet(f">={floor[1][0]}.{floor[1][1]}"))
        fitting = newest_django_for(major_minor)
        if fitting is not None and fitting < floor[0]:
            following = [s for s, _ in DJANGO_PYTHON if s > fitting]
            pin_below = following[0] if following else None
    if requires_python:
        try:
            wanted = SpecifierSet(requires_python)
        except InvalidSpecifier:
            wanted = None
        if wanted is not None and not wanted.contains(version, prereleases=True):
            needs.append(f"pyproject.toml has requires-python {requires_python}")
            checks.append(wanted)
            pin_below = None  # the project itself asks for it: no Django pin helps
    if not needs:
        return None
    advice = []
    debian = next((name for name, py in DEBIAN_PYTHON
                   if Version(py) > version and all(c.contains(py, prereleases=True) for c in checks)), None)
    advice.append(f"use {debian}" if debian else "use a server with a newer Python")
    if pin_below is not None:
        advice.append(f"pin Django < {_series_text(pin_below)}")
    return (f"{host}: Python {major_minor[0]}.{major_minor[1]} is too old for this release's requirements "
            f"({'; '.join(needs)}): {' or '.join(advice)}")
