"""A web host's Python against what a release's requirements need (pure: no host)."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from pinned.state.desired import Desired, HostSpec
from pinned.state.model import Django, Site, State
from pinned.state.observed import HostObserved, parse
from pinned.state.plan import plan
from pinned.state.python_need import DJANGO_PYTHON, django_floor, django_requirements, python_too_old
from pinned.state.render import plan_json, render_text
from pinned.state.source import Release, release

DJANGO6 = "Django>=6.0,<7\n"
LINE_311 = ("www1: Python 3.11 is too old for this release's requirements (Django>=6.0,<7 needs Python >= 3.12): "
            "use Debian 13 or pin Django < 6")


def test_django_6_on_python_3_11_is_one_line_naming_host_python_need_and_way_out():
    assert python_too_old("www1", "3.11.2", DJANGO6) == LINE_311
    assert python_too_old("www1", "3.11.2", "django==6.1.3\n") == (
        "www1: Python 3.11 is too old for this release's requirements (django==6.1.3 needs Python >= 3.12): "
        "use Debian 13 or pin Django < 6")


@pytest.mark.parametrize("requirements", [
    DJANGO6,
    "Django~=6.0\n",
    "Django==6.0.*\n",
    "# the web framework\nDjango>=6.0  # LTS later\ngunicorn\n",
    "requests\nDjango[argon2] >= 6.0, < 6.2 \\\n    --hash=sha256:abc\n",
    "DJANGO>6.0.1\n",
    "django==6.0a1\n",
])
def test_django_6_spellings_need_3_12(requirements):
    assert python_too_old("w", "3.11.2", requirements) is not None
    assert python_too_old("w", "3.12.0", requirements) is None
    assert python_too_old("w", "3.13.5", requirements) is None


@pytest.mark.parametrize("requirements", [
    "Django>=5.2,<5.3\n",  # the example app
    "Django>=5.0\n",  # pip picks 5.2 on 3.11 (Django 6 says it needs 3.12): no block
    "Django\n",
    "Django>=4.2,<6\n",
    "",
    "-r base.txt\n-e git+https://example.invalid/django.git#egg=django\n",
    "Django @ https://example.invalid/Django-6.0.tar.gz\n",  # a URL: no specifier to read
    "Django>=6.0; python_version >= '3.12'\nDjango>=5.2,<6; python_version < '3.12'\n",
    "djangorestframework>=3.16\ndjango-environ>=0.12\n",  # other packages than Django
    "this is not a requirement ===\n",
])
def test_what_python_3_11_can_install_is_not_blocked(requirements):
    assert python_too_old("w", "3.11.2", requirements) is None


def test_markers_are_read_with_the_hosts_python():
    reqs = "Django>=6.0; python_version >= '3.11'\n"
    assert python_too_old("w", "3.11.2", reqs) is not None
    assert python_too_old("w", "3.10.12", reqs) is None  # the line does not apply there
    assert [r.line for r in django_requirements(reqs, "3.11.2")] == ["Django>=6.0"]


def test_older_floors_and_their_advice():
    assert python_too_old("old", "3.9.2", "Django>=5.0\n") == (
        "old: Python 3.9 is too old for this release's requirements (Django>=5.0 needs Python >= 3.10): "
        "use Debian 12 or pin Django < 5")
    assert python_too_old("old", "3.7.3", "Django>=4.2\n") == (
        "old: Python 3.7 is too old for this release's requirements (Django>=4.2 needs Python >= 3.8): "
        "use Debian 12 or pin Django < 4")


def test_a_django_newer_than_known_keeps_the_newest_known_floor():
    assert django_floor(SpecifierSet(">=7.0")) == ((6, 2), (3, 12))
    assert python_too_old("w", "3.11.2", "Django>=7.0\n") is not None
    assert django_floor(SpecifierSet("<3.0")) is None  # older than any series known: nothing to say


def test_requires_python_of_pyproject():
    assert python_too_old("w", "3.11.2", "Django>=5.2,<5.3\n", ">=3.12") == (
        "w: Python 3.11 is too old for this release's requirements (pyproject.toml has requires-python "
        ">=3.12): use Debian 13")
    assert python_too_old("w", "3.11.2", "", ">=3.11.4") is not None  # the patch release counts
    assert python_too_old("w", "3.11.4", "", ">=3.11.4") is None
    assert python_too_old("w", "3.13.5", "", ">=3.14") == (
        "w: Python 3.13 is too old for this release's requirements (pyproject.toml has requires-python "
        ">=3.14): use a server with a newer Python")
    assert python_too_old("w", "3.11.2", "", "not a specifier") is None
    both = python_too_old("w", "3.11.2", DJANGO6, ">=3.12")
    assert both == ("w: Python 3.11 is too old for this release's requirements (Django>=6.0,<7 needs Python >= "
                    "3.12; pyproject.toml has requires-python >=3.12): use Debian 13")


def test_an_unknown_python_is_not_judged():
    assert python_too_old("w", "", DJANGO6) is None


SERIES = [s for s, _ in DJANGO_PYTHON]
PYTHONS = [(3, m) for m in range(6, 15)]


@given(series=st.sampled_from(SERIES), op=st.sampled_from(["==", ">=", "~="]),
       python=st.sampled_from(PYTHONS), patch=st.integers(0, 20))
def test_blocked_exactly_when_the_lowest_allowed_series_needs_a_newer_python(series, op, python, patch):
    spec = f"{series[0]}.{series[1]}" + (f".{patch}" if op == "==" else "")
    line = python_too_old("h", f"{python[0]}.{python[1]}.1", f"Django{op}{spec}\n")
    floor = dict(DJANGO_PYTHON)[series]
    assert (line is not None) == (python < floor)
    if line is not None:
        assert line.startswith(f"h: Python {python[0]}.{python[1]} is too old") and f">= {floor[0]}.{floor[1]}" in line


@given(lower=st.sampled_from(SERIES), upper=st.sampled_from(SERIES), python=st.sampled_from(PYTHONS))
def test_a_range_needs_the_floor_of_its_lowest_series(lower, upper, python):
    spec = SpecifierSet(f">={lower[0]}.{lower[1]},<={upper[0]}.{upper[1]}.99")
    floor = django_floor(spec)
    if lower > upper:
        assert floor is None or floor[0] > DJANGO_PYTHON[-1][0]
    else:
        assert floor == (lower, dict(DJANGO_PYTHON)[lower])
        # The advice's pin, if any, names a series this Python can run below the floor's series.
        line = python_too_old("h", f"{python[0]}.{python[1]}.0", f"Django{spec}\n")
        if line and "pin Django < " in line:
            below = line.rsplit("pin Django < ", 1)[1]
            parts = tuple(int(x) for x in below.split(".")) + (0,)
            assert parts[:2] <= lower


@given(st.text(max_size=300))
def test_any_requirements_text_gives_a_line_or_none(text):
    line = python_too_old("h", "3.11.2", text)
    assert line is None or (line.startswith("h: Python 3.11 is too old") and "\n" not in line)


# ---------------------------------------------------------------- in the plan

HOST = HostSpec("www1", "10.0.0.5", ("web", "db"))


def desired(requirements: str, requires_python: str = "") -> Desired:
    rel = Release("a" * 40, 1_700_000_000, "fp0", "req0", ("crops/migrations/0001_initial.py",), requirements,
                  requires_python=requires_python)
    state = State(app="agroguia", repository="/src", release=rel.commit, django=Django(settings="agroguia.settings"),
                  site=Site(health_url="/health/"))
    return Desired(env="test", state=state, release=rel, hosts=(HOST,))


def test_a_plan_for_a_host_with_too_old_a_python_is_blocked_with_that_line():
    observed = {"www1": replace(HostObserved(), python="3.11.2")}
    p = plan(desired(DJANGO6), observed)
    assert p.status == "blocked" and p.blocked == (LINE_311,) and not p.steps
    text = render_text(p, "state/test.yaml")
    assert LINE_311 in text and "No changes" not in text
    assert plan_json(p, "state/test.yaml")["blocked"] == [LINE_311]
    assert plan(desired(DJANGO6), {"www1": replace(HostObserved(), python="3.13.5")}).status == "changes"
    assert plan(desired("Django>=5.2,<5.3\n"), observed).status == "changes"


def test_only_web_hosts_are_judged():
    web, db = HostSpec("www1", "10.0.0.5", ("web",)), HostSpec("db1", "10.0.0.6", ("db",))
    d = replace(desired(DJANGO6), hosts=(web, db))
    observed = {"www1": replace(HostObserved(), python="3.13.5"), "db1": replace(HostObserved(), python="3.11.2")}
    assert plan(d, observed).status == "changes"
    observed = {"www1": replace(HostObserved(), python="3.11.2"), "db1": replace(HostObserved(), python="3.13.5")}
    assert plan(d, observed).blocked == (LINE_311,)


def test_the_observe_fact_gives_the_full_python_version():
    doc = '{"python": "3.11", "python_version": "3.11.2", "packages": []}'
    assert parse(doc).python == "3.11.2"
    assert parse('{"python": "3.11"}').python == "3.11"  # an older observe script: major.minor only


def test_requires_python_is_read_from_the_release_pyproject(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                       capture_output=True)

    git("init", "-q")
    (repo / "requirements.txt").write_text("Django>=5.2\n")
    git("add", "."), git("commit", "-qm", "no pyproject")
    state = desired("").state
    assert release(repo, "HEAD", state).requires_python == ""
    (repo / "pyproject.toml").write_text('[project]\nname = "site"\nrequires-python = ">=3.12"\n')
    git("add", "."), git("commit", "-qm", "pyproject")
    assert release(repo, "HEAD", state).requires_python == ">=3.12"
    (repo / "pyproject.toml").write_text("this is [not toml\n")
    git("add", "."), git("commit", "-qm", "broken")
    assert release(repo, "HEAD", state).requires_python == ""
