"""python -m bench.profile_run PYINFRA-ARGS… — `pyinfra PYINFRA-ARGS…`, timing where its time goes.

The bench runs a deploy through this instead of `pyinfra` when it profiles one. It is pyinfra's own command line
(pyinfra_cli.main), with timers wrapped around what it calls: connecting, pinned's engine (the deploy lock,
observing, planning, making the release's archive), each operation on each host, and inside operations each
command run and file uploaded over SSH (labelled by the remote script it runs). Nothing pinned or pyinfra does
is changed. The events go as JSON to the file $PINNED_BENCH_PROFILE when the process ends; `summarize()` turns
them into seconds per phase.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
EVENTS: list[dict] = []
REMOTE = Path(__file__).resolve().parent.parent / "operations" / "remote"


def _markers() -> list[tuple[str, str]]:
    """(script name, a line of it that survives shell quoting verbatim): how a command is told apart."""
    out = []
    for path in sorted(REMOTE.glob("*")):
        if path.suffix not in (".sh", ".py") or path.name == "lib.sh":
            continue
        lines = [line.strip() for line in path.read_text().splitlines()
                 if line.strip() and not line.strip().startswith("#") and "'" not in line and len(line.strip()) > 12]
        if lines:
            out.append((path.stem, max(lines, key=len)))
    return out


MARKERS = _markers()


def label_of(command: str) -> str:
    """The remote script a command runs, or the scripts of a chained command (operations.scripts.chain) joined by
    `+` in the order they run, e.g. `build_extract+build_stamp+build_finish`."""
    found = sorted((command.find(marker), name) for name, marker in MARKERS if marker in command)
    names = [name for _, name in found]
    if "venv_start" in names:  # it carries the background build's script (venv_build.sh) as an argument
        names.remove("venv_build")
    if names:
        return "+".join(names)
    words = command.split()
    return " ".join(words[:2])[:40] if words else "?"


def timed(kind: str, label_fn):
    def wrap(fn):
        def inner(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                EVENTS.append({"kind": kind, "label": label_fn(*args, **kwargs), "start": start - T0,
                               "end": time.perf_counter() - T0})
        inner.__wrapped__ = fn
        return inner
    return wrap


def install() -> None:
    from pyinfra.api import connect, operations
    from pyinfra.connectors.ssh import SSHConnector

    from pinned import engine

    connect.connect_all = timed("connect", lambda *a, **k: "connect")(connect.connect_all)

    def op_label(state, host, op_hash):
        names = state.get_op_meta(op_hash).names
        return f"{host.name}: {sorted(names)[0] if names else op_hash}"

    operations.run_host_op = timed("operation", op_label)(operations.run_host_op)

    def command_label(self, command, *args, **kwargs):
        raw = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        return f"{self.host.name}: {label_of(raw)}"

    def upload_label(self, filename_or_io, remote_filename, *args, **kwargs):
        name = os.path.basename(str(remote_filename))
        return f"{self.host.name}: upload {'archive' if name.endswith('.tar.gz') else name}"

    SSHConnector.run_shell_command = timed("command", command_label)(SSHConnector.run_shell_command)
    SSHConnector.put_file = timed("command", upload_label)(SSHConnector.put_file)
    for name in ("take_lock", "observe", "with_transfers", "plan"):
        setattr(engine, name, timed("engine", lambda *a, _n=name, **k: _n)(getattr(engine, name)))


def write() -> None:
    path = os.environ.get("PINNED_BENCH_PROFILE")
    if path:
        Path(path).write_text(json.dumps({"total": time.perf_counter() - T0, "events": EVENTS}))


SYMBOLS = re.compile(r"^[+~-] (\S+)")


def summarize(profile: dict, host: str) -> dict[str, float]:
    """Seconds per phase of one profiled run, for one host: python start-up and pyinfra's loading, connect,
    the engine's steps (lock, observe, plan, archive), each operation kind (e.g. `op release`, `op app`), and
    inside operations each command or upload (e.g. `cmd build_collectstatic`, `cmd upload archive`)."""
    out: dict[str, float] = {}

    def add(key: str, seconds: float) -> None:
        out[key] = round(out.get(key, 0.0) + seconds, 3)

    events = profile["events"]
    first = min((e["start"] for e in events), default=0.0)
    add("startup (python, pyinfra, config, inventory)", first)
    top = [e for e in events if e["kind"] in ("connect", "engine")]
    for e in events:
        seconds = e["end"] - e["start"]
        if e["kind"] in ("connect", "engine"):
            # the engine's observe nests no other engine call; plan runs twice when a release is built
            add(f"{e['kind']} {e['label']}" if e["kind"] == "engine" else "connect", seconds)
        elif e["label"].startswith(host + ": "):
            label = e["label"][len(host) + 2:]
            if e["kind"] == "operation":
                m = SYMBOLS.match(label)
                add(f"op {m.group(1) if m else label.split(':')[0].strip('(')}", seconds)
            elif not any(t["start"] <= e["start"] and e["end"] <= t["end"] for t in top):
                add(f"cmd {label}", seconds)
    ops_end = max((e["end"] for e in events if e["kind"] == "operation"), default=first)
    add("exit (after the last operation)", profile["total"] - ops_end)
    return out


if __name__ == "__main__":
    sys.argv = ["pyinfra", *sys.argv[1:]]
    atexit.register(write)
    install()
    from pyinfra_cli.main import main
    sys.exit(main())
