"""Instant rollback: the release that served until a switch stays warm for `keep_warm` (its socket and
gunicorn keep running), so a rollback to it within that window is a link switch and an nginx reload with no
gunicorn start. A timer on the host (`pinned-warm-<app>@<release>.timer`, from a template) stops it when the
window ends; it never stops the current release (its service checks `current` first) and is cancelled when
the release is started again. Pure: what stays warm is decided from the observed host, like the rest of the plan.

Invariant: a warm release runs with the same env and secrets as the current one. A run that changes them
(the current release restarts) stops every warm release instead, so a rollback never lands on stale values.
"""

from __future__ import annotations

from . import changes as c
from .desired import Desired, HostSpec, ManagedFile, render
from .observed import HostObserved

# state.plan (Step, CHANGE, REMOVE) is imported where it is used: plan imports desired, which imports this module.


def warm_files(d: Desired) -> tuple[ManagedFile, ...]:
    """The warm timer's and its service's templates (web hosts; installed whatever keep_warm says)."""
    s, lay = d.state, d.layout
    common = {"app": s.app, "root": lay.root}
    return (
        ManagedFile(lay.warm_timer_template, render("warm.timer.j2", **common, keep_warm=s.keep_warm,
                                                    seconds=s.keep_warm_seconds), "warm release timer template",
                    reload="systemd"),
        ManagedFile(lay.warm_service_template, render("warm.service.j2", **common),
                    "warm release stop template", reload="systemd"),
    )


def running_releases(d: Desired, o: HostObserved) -> list[str]:
    """Releases whose units run or are enabled."""
    lay = d.layout
    return sorted({lay.release_of_unit(u) for u, st in o.units.items()
                   if u.startswith(lay.unit_prefix) and (st.get("active") in ("active", "activating")
                                                        or st.get("enabled"))})


def serving(d: Desired, o: HostObserved, release_id: str) -> bool:
    lay = d.layout
    return o.unit_active(lay.unit(release_id, "socket")) and o.unit_active(lay.unit(release_id, "service"))


def warm_after(d: Desired, o: HostObserved, release_id: str, config_same: bool) -> dict[str, bool]:
    """The releases warm after this run: id → True when this run starts its window (it served until this
    run's switch), False when its window is already running (a run that does not switch leaves it alone).
    Empty with keep_warm 0, or when this run changes the env or secrets (config_same False)."""
    if not d.state.keep_warm_seconds or not config_same:
        return {}
    lay = d.layout
    if o.current != release_id:  # this run switches: only the release serving until now stays warm
        return {o.current: True} if o.current and serving(d, o, o.current) else {}
    return {rid: False for rid in running_releases(d, o)
            if rid != release_id and o.unit_active(lay.warm_timer(rid)) and serving(d, o, rid)}


def plan_warm_or_stop(d: Desired, host: HostSpec, o: HostObserved, release_id: str, config_same: bool) -> list:
    """After the switch (phase cleanup), each release that runs but is not the pinned one: kept warm (its
    timer starts), left warm (its window runs), or stopped."""
    from .plan import CHANGE, REMOVE, Step

    lay, app = d.layout, d.state.app
    warm = warm_after(d, o, release_id, config_same)
    steps = []
    for other in running_releases(d, o):
        if other == release_id or warm.get(other) is False:
            continue
        if warm.get(other):
            steps.append(Step(host.name, CHANGE, c.Warm(lay.unit(other, "socket"), lay.unit(other, "service"), other,
                                                        lay.warm_timer(other)),
                              f"{app}@{other}", f"kept warm for {d.state.keep_warm} (a rollback to it needs no start), "
                              f"then stopped by {lay.warm_timer(other)}", phase="cleanup"))
        else:
            steps.append(Step(host.name, REMOVE, c.Stop(lay.unit(other, "socket"), lay.unit(other, "service"), other),
                              f"{app}@{other}", "no longer current", phase="cleanup"))
    return steps
