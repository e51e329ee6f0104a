"""Rolling out host by host (the state file's `rollout:`), planned (pure).

Without it every web host switches in the phase `switch`, together. With it, only the canary hosts (the first
`canary` web hosts that move from a release they serve to the pinned one) switch there; each is then watched
(phase `watch`: a `Watch` step, operations/remote/watch.sh), and the other web hosts switch after it, `batch` at
a time (phase `rollout`, one wave per batch). A watch that fails switches its canary back to the release it
served — still running: old releases stop only in `cleanup`, after every switch — and fails the run, so no
other web host switches.

Two releases serve side by side during a rollout, so they must share a database: a release of another schema
version than the one served (a copy, or a rollback across a schema change) is refused in the plan. With
`schema_change: in_place` both releases run on the one live database, and the plan says so.
"""

from __future__ import annotations

from dataclasses import replace

from . import changes as c
from .desired import Desired, health_host
from .observed import HostObserved
from .plan import ADD, Allocation, Step


def _moving(d: Desired, observed: dict[str, HostObserved], steps: list[Step]) -> list:
    """Web hosts (in state-file order) that switch from a release they serve to another one."""
    switching = {s.host for s in steps if isinstance(s.change, c.Switch)}
    return [h for h in d.web_hosts if h.name in switching
            and observed[h.name].current_release is not None and observed[h.name].current != d.release.id]


def rollout_refusal(d: Desired, observed: dict[str, HostObserved], alloc: Allocation) -> tuple[str, ...]:
    """A rollout of a release on another schema version than the one served: refused (one line)."""
    if d.state.rollout is None:
        return ()
    served = sorted({o.current_release.schema for h in d.web_hosts
                     if (o := observed[h.name]).current_release is not None and o.current != d.release.id})
    other = [n for n in served if n != alloc.schema]
    if not other:
        return ()
    lay = d.layout
    return (f"rollout: release {d.release.id} runs on schema version {alloc.schema} ({lay.database(alloc.schema)}), "
            f"the web hosts serve schema version {other[0]} ({lay.database(other[0])}): during a rollout both "
            "would serve at once, each writing to its own database, and the writes to one would be missing from the "
            "other. Deploy this release to every host at once (remove `rollout:` for this deploy), or use "
            "`schema_change: in_place` if both releases can run on one database.",)


def plan_rollout(d: Desired, observed: dict[str, HostObserved], steps: list[Step],
                 alloc: Allocation) -> tuple[list[Step], tuple[str, ...]]:
    """The switch steps of the non-canary hosts moved into the `rollout` phase, batch by batch, and a watch
    step on each canary host."""
    r = d.state.rollout
    moving = _moving(d, observed, steps) if r else []
    if not moving:
        return steps, ()
    canary, rest = moving[:r.canary], moving[r.canary:]
    wave_of = {h.name: 1 + i // r.batch for i, h in enumerate(rest)}
    batches = (len(rest) + r.batch - 1) // r.batch
    out: list[Step] = []
    for s in steps:
        if s.phase == "switch" and s.host in wave_of:
            wave = wave_of[s.host]
            s = replace(s, phase="rollout", wave=wave,
                        reason=f"{s.reason}; rollout batch {wave} of {batches}, after the canary's watch")
        elif s.phase == "switch" and isinstance(s.change, c.Switch) and s.host in {h.name for h in canary}:
            s = replace(s, reason=f"{s.reason}; canary, watched {r.watch} s")
        out.append(s)
    lay, rel = d.layout, d.release
    for h in canary:
        o = observed[h.name]
        old = o.current_release
        upstream = o.files.get(lay.nginx_upstream)
        out.append(Step(h.name, ADD, c.Watch(
            socket=lay.socket(rel.id), health_host=health_host(d, h), health_url=d.state.site.health_url,
            access_log=lay.access_log, seconds=r.watch, max_error_rate=f"{r.max_error_rate:g}",
            upstream_path=lay.nginx_upstream, old_upstream=upstream.content if upstream else "",
            current=lay.current, old_target=lay.current_target(old.schema, old.id), history=lay.history,
            new_release=rel.id, old_release=old.id, by=d.by, served=lay.served(old.schema),
        ), f"{d.state.app}@{rel.id}", f"canary: {r.watch} s of health checks and at most {r.max_error_rate:g}% 5xx, "
           f"else back to {old.id} and no other host switches", phase="watch"))
    warnings = [f"rollout: {', '.join(h.name for h in canary)} first (canary, watched {r.watch} s)"
                + (f", then {', '.join(h.name for h in rest)} in {batches} batch(es) of {r.batch}" if rest else "")
                + "; until the last batch, web hosts serve different releases."]
    if alloc.in_place and alloc.migrate:
        warnings.append("rollout with schema_change: in_place: the migrations run on the live database before the "
                        "canary switches, and the release being replaced keeps serving from it on the other hosts "
                        "until their batch (both releases on one schema).")
    return out, tuple(warnings)


def mixed_releases(d: Desired, observed: dict[str, HostObserved]) -> tuple[str, ...]:
    """Web hosts that serve different releases now (a rollout stopped part way, or a host added)."""
    serving: dict[str, list[str]] = {}
    for h in d.web_hosts:
        current = observed[h.name].current
        if current:
            serving.setdefault(current, []).append(h.name)
    if len(serving) < 2:
        return ()
    return ("web hosts serve different releases now: "
            + "; ".join(f"{rid} on {', '.join(names)}" for rid, names in sorted(serving.items())) + ".",)
