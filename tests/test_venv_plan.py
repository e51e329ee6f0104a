"""Where the plan puts a virtualenv's background build: started right after the packages (python3-venv), before
the rest of the host's first phase; waited for just before the release's build, after the unit and env files;
never when the virtualenv is ready (no hosts: the plan is pure)."""

from __future__ import annotations

from dataclasses import replace

from test_plan import EMPTY, desired

from pinned.state import changes as c
from pinned.state.desired import HostSpec
from pinned.state.observed import HostObserved
from pinned.state.plan import plan
from simulate import apply_plan


def test_a_fresh_host_starts_the_venv_right_after_the_packages_and_waits_before_the_build():
    d = desired("A")
    steps = plan(d, EMPTY).steps
    kinds = [s.kind for s in steps]
    assert kinds[:2] == ["packages", "venv-start"]  # python3-venv first, then the build starts, then the rest
    start, wait = steps[1].change, steps[kinds.index("venv")].change
    assert isinstance(start, c.VenvStart) and isinstance(wait, c.Venv) and wait.started
    assert start.path == wait.path == d.layout.venv(d.release.requirements_hash)
    assert start.undo == wait.undo == d.layout.lock_undo(f"venv-{d.release.requirements_hash}")
    assert start.requirements == d.release.requirements and start.extra == tuple(d.release.runtime)
    # Meanwhile: the user, the folders, the secrets, the database account, the unit and env files.
    between = kinds[2:kinds.index("venv")]
    assert {"user", "directory", "secrets", "db-user", "config"} <= set(between), between
    assert kinds.index("venv") + 1 == kinds.index("release")  # waited for just before the build needs it


def test_a_warm_host_starts_the_venv_first_thing():
    kinds = [s.kind for s in plan(desired("A"), {"server": replace(HostObserved(), packages=frozenset(
        ("nginx", "mariadb-server", "python3-venv")))}).steps]
    assert kinds[0] == "venv-start"


def test_no_venv_steps_when_its_virtualenv_is_ready_and_one_per_web_host_when_not():
    d = desired("A")
    converged = apply_plan(plan(d, EMPTY), EMPTY, d)
    b2 = desired("B2")  # other requirements: a new virtualenv
    kinds = [s.kind for s in plan(b2, converged).steps]
    assert kinds.count("venv-start") == 1 and kinds.count("venv") == 1
    assert not [s for s in plan(desired("B"), converged).steps if s.kind in ("venv-start", "venv")]
    webs = (HostSpec("w1", "10.0.0.6", ("web",)), HostSpec("w2", "10.0.0.7", ("web",)), HostSpec("db", "10.0.0.8",
                                                                                                   ("db",)))
    multi = replace(d, hosts=webs)
    steps = plan(multi, {h.name: HostObserved() for h in webs}).steps
    assert sorted(s.host for s in steps if s.kind == "venv-start") == ["w1", "w2"]
    assert sorted(s.host for s in steps if s.kind == "venv") == ["w1", "w2"]
