"""Instant rollback without hosts: what the plan keeps warm (hypothesis over pin sequences and keep_warm values,
with the step simulator), the scripts that keep a release warm and start a warm one, and the warm stop unit's
guard that never stops the current release (its ExecCondition run here on a real link)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan import EMPTY, desired
from test_remote_scripts import calls, run, stub

from pinned.operations.scripts import run_sh
from pinned.state.layout import Layout
from pinned.state.plan import plan
from pinned.state.warm import running_releases, warm_files
from simulate import apply_plan

LAY = Layout("agroguia")


def warm_ids(o) -> set[str]:
    return {rid for rid in o.releases if o.unit_active(LAY.warm_timer(rid))
            and o.unit_active(LAY.unit(rid, "service"))}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "R1", "R2", "S1"]), st.sampled_from(["0", "3s", "10m"]),
                          st.sampled_from([1, 5])), min_size=1, max_size=7))
def test_only_the_release_that_served_stays_warm_and_never_the_current(sequence):
    observed = EMPTY
    for tag, keep_warm, keep in sequence:
        d = desired(tag, keep_warm=keep_warm, keep_releases=keep)
        before = observed["server"]
        p = plan(d, observed)
        pinned = d.release.id
        # Never stopped or kept warm: the pinned release; never pruned: a release that stays warm.
        assert not [s for s in p.steps if s.kind in ("stop", "warm") and s.change.release_id == pinned]
        warmed = {s.change.release_id for s in p.steps if s.kind == "warm"}
        pruned = {s.change.release_id for s in p.steps if s.kind == "prune"}
        assert not warmed & pruned
        if keep_warm == "0":
            assert not warmed
        elif before.current and before.current != pinned and before.unit_active(LAY.unit(before.current, "service")):
            assert warmed == {before.current}, p.steps  # the release that served until this switch
        else:
            assert warmed <= {before.current}
        start = [s for s in p.steps if s.kind == "app"]
        if start and pinned in warm_ids(before):
            assert start[0].reason == "warm: no start needed" and start[0].change.warm_timer == LAY.warm_timer(pinned)
            assert not start[0].change.loaded  # same env and secrets as the current one: the record stays true
        observed = apply_plan(p, observed, d)
        after = observed["server"]
        assert after.current == pinned
        # At most one warm release: the one that served until this switch, or the one already warm.
        assert warm_ids(after) <= (warm_ids(before) | {before.current}) - {pinned} and len(warm_ids(after)) <= 1
        assert not warm_ids(after) & pruned
        assert set(running_releases(d, after)) <= {pinned} | warm_ids(after)
        assert plan(d, observed).empty  # converged: a warm release is left alone while its window runs


def test_a_change_of_env_stops_warm_releases_instead():
    a, b = desired("A"), desired("B")
    on_a = apply_plan(plan(a, EMPTY), EMPTY, a)
    on_b = apply_plan(plan(b, on_a), on_a, b)
    assert warm_ids(on_b["server"]) == {a.release.id}
    b_env = desired("B", env={"GREETING": "hi"})
    p = plan(b_env, on_b)
    assert {(s.kind, s.change.release_id) for s in p.steps if s.kind in ("stop", "warm", "restart")} == {
        ("stop", a.release.id), ("restart", b.release.id)}
    # Rolling back in the same run as an env change: the warm release runs with the old values: restarted.
    a_env = desired("A", env={"GREETING": "hi"})
    start = next(s for s in plan(a_env, on_b).steps if s.kind == "app")
    assert start.change.restart and "restarted" in start.reason


def test_start_of_a_warm_release_cancels_its_timer_first_and_starts_nothing_new(tmp_path):
    stub(tmp_path / "bin", "systemctl", "exit 0")  # is-enabled: yes (a warm release's socket stays enabled)
    path = {"PATH": f"{tmp_path}/bin:{os.environ['PATH']}"}
    result = run(run_sh("start_units.sh", "app@r1.socket", "app@r1.service", "pinned-warm-app@r1.timer", ""), path)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path / "bin") == ["systemctl stop pinned-warm-app@r1.timer",
                                       "systemctl is-enabled --quiet app@r1.socket",
                                       "systemctl start app@r1.socket app@r1.service"]
    (tmp_path / "bin" / "calls.log").unlink()
    stub(tmp_path / "bin", "systemctl", 'case "$1" in is-enabled) exit 1;; esac')  # a new release: not enabled
    result = run(run_sh("start_units.sh", "app@r1.socket", "app@r1.service", "", "restart"), path)
    assert calls(tmp_path / "bin") == ["systemctl is-enabled --quiet app@r1.socket",
                                       "systemctl enable --quiet app@r1.socket", "systemctl start app@r1.socket",
                                       "systemctl restart app@r1.service"]


def test_warm_only_restarts_the_timer(tmp_path):
    stub(tmp_path / "bin", "systemctl", "exit 0")
    result = run(run_sh("warm.sh", "app@r1.socket", "app@r1.service", "pinned-warm-app@r1.timer"),
                 {"PATH": f"{tmp_path}/bin:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path / "bin") == ["systemctl restart pinned-warm-app@r1.timer"]


def _condition(root: Path, release: str) -> int:
    """Run the warm stop service's ExecCondition= for `release` as systemd would (%i, $$ unescaped)."""
    d = desired("A", keep_warm="3s")
    service = next(f for f in warm_files(d) if f.path.endswith(".service")).content
    line = re.search(r"^ExecCondition=/bin/sh -c '(.*)'$", service, re.M).group(1)
    text = line.replace("%i", release).replace("$$", "$").replace("/srv/agroguia", str(root))
    return subprocess.run(["sh", "-c", text], timeout=10).returncode


def test_the_end_of_a_window_never_stops_the_current_release(tmp_path):
    (tmp_path / "current").symlink_to("versions/0/20261120T100000-aaaaaaaaaaaa")
    assert _condition(tmp_path, "20261120T100000-aaaaaaaaaaaa") == 1  # current: skipped (1..254: condition false)
    assert _condition(tmp_path, "20261122T100000-bbbbbbbbbbbb") == 0  # not current: stopped


def test_the_timer_template_says_the_window():
    timer = next(f for f in warm_files(desired("A", keep_warm="90s")) if f.path.endswith(".timer"))
    assert timer.path == "/etc/systemd/system/pinned-warm-agroguia@.timer" and timer.reload == "systemd"
    assert "OnActiveSec=90\n" in timer.content and "RemainAfterElapse=no" in timer.content
    assert desired("A", keep_warm="2h").state.keep_warm_seconds == 7200
    assert desired("A", keep_warm="0").state.keep_warm_seconds == 0
