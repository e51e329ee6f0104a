"""Processes (`processes:`) and scheduled commands (`schedule:`) on each web host (pure: no host involved).

* A process is a template unit `<app>-<name>@.service`; its instances `<app>-<name>@<release>` run in the
  release's folder (by-id/<release>), as the app user, with its environment and the web unit's hardening.
  They start with the release, before the switch (a process that exits or restarts within a short settle
  time fails the deploy, like a failed health check) and the old release's are stopped after the switch
  (phase cleanup): their own steps, apart from the web units' (which may stay warm after a switch).
* A scheduled command is a timer and a oneshot service `<app>-schedule-<name>`, run in `current` as it is
  when the timer fires (a switch or a rollback changes no timer), written and enabled after the switch.
* Every command runs through the same few lines of /bin/sh (`runner`): resolve the folder once (`cd -P`),
  export PINNED_RELEASE (the release's id) and the release's virtualenv first on PATH, then the command.
"""

from __future__ import annotations

import shlex

from . import changes as c
from .desired import Desired, HostSpec, ManagedFile
from .layout import SETTINGS_MODULE
from .observed import HostObserved

# How long a freshly started process must keep running (no exit, no restart) before the switch.
SETTLE_SECONDS = 3
# How long a stopping process has after SIGTERM (then SIGKILL).
STOP_SECONDS = 30

# The same hardening as the web unit (templates/app.service.j2; tests/test_processes_unit.py compares them).
HARDENING = ("PrivateTmp=yes", "PrivateDevices=yes", "ProtectSystem=strict", "ProtectHome=yes",
             "ProtectKernelTunables=yes", "ProtectControlGroups=yes", "NoNewPrivileges=yes", "RestrictSUIDSGID=yes")


def shell_command(command: str) -> str:
    """The state file's command as sh runs it: `manage.py …` with the release's python."""
    return f"python {command}" if command.split(None, 1)[:1] == ["manage.py"] else command


def runner(command: str) -> str:
    """The sh script a unit (or `pinned manage`) runs in its working folder (by-id/<release> or current)."""
    return ('cd -P . || exit 1; PINNED_RELEASE="${PWD##*/}"; PATH="$PWD/.venv/bin:$PATH"; '
            f"export PINNED_RELEASE PATH; {shell_command(command)}")


def unit_quote(argument: str) -> str:
    """One argument of a unit file's Exec line as systemd reads it back exactly: in double quotes, `\\` and
    `"` escaped by a backslash, `%` (a specifier) doubled, `$` (a variable) doubled."""
    out = argument.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{out}"'


def environment_lines(d: Desired) -> list[str]:
    lay = d.layout
    return [f"EnvironmentFile={lay.env_file}", f"EnvironmentFile={lay.secrets}",
            f"Environment=DJANGO_SETTINGS_MODULE={SETTINGS_MODULE} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1"]


def _service(d: Desired, description: str, workdir: str, command: str, extra: list[str]) -> str:
    app, lay = d.state.app, d.layout
    lines = ["[Unit]", f"Description={description}", "After=network.target mariadb.service", "",
             "[Service]", *extra, f"User={app}", f"Group={app}", f"WorkingDirectory={workdir}",
             *environment_lines(d), f"ExecStart=/bin/sh -c {unit_quote(runner(command))}",
             *HARDENING, *(f"ReadWritePaths={lay.shared(n)}" for n in d.state.shared)]
    return "\n".join(lines) + "\n"


def process_file(d: Desired, name: str, command: str) -> ManagedFile:
    lay, app = d.layout, d.state.app
    text = (f"# Managed by pinned ({app}): process `{name}` of release %i (processes.{name}).\n"
            + _service(d, f"{app} {name} of release %i", f"{lay.root}/by-id/%i", command,
                       ["Type=simple", "Restart=on-failure", "RestartSec=1", "KillMode=control-group",
                        "KillSignal=SIGTERM", f"TimeoutStopSec={STOP_SECONDS}"])
            + "\n[Install]\nWantedBy=multi-user.target\n")
    return ManagedFile(lay.process_template(name), text, f"process {name}", reload="systemd")


def schedule_files(d: Desired, entry) -> tuple[ManagedFile, ManagedFile]:
    lay, app = d.layout, d.state.app
    service = (f"# Managed by pinned ({app}): the scheduled command `{entry.name}`, run in the current release.\n"
               + _service(d, f"{app} scheduled {entry.name} (current release)", lay.current, entry.command,
                          ["Type=oneshot"]))
    timer = (f"# Managed by pinned ({app}): when `{entry.name}` runs (schedule: on_calendar).\n"
             "[Unit]\n"
             f"Description={app} scheduled {entry.name}\n\n"
             "[Timer]\n"
             f"OnCalendar={entry.on_calendar}\nPersistent=true\nUnit={lay.schedule_unit(entry.name, 'service')}\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return (ManagedFile(f"{lay.unit_dir}/{lay.schedule_unit(entry.name, 'service')}", service,
                        f"scheduled {entry.name} (service)", reload="systemd"),
            ManagedFile(f"{lay.unit_dir}/{lay.schedule_unit(entry.name, 'timer')}", timer,
                        f"scheduled {entry.name} (timer)", reload="systemd"))


def process_files(d: Desired) -> tuple[ManagedFile, ...]:
    """Every unit file of the processes and schedules (what the observe request asks about)."""
    return (*(process_file(d, n, cmd) for n, cmd in sorted(d.state.processes.items())),
            *(f for e in d.state.schedule for f in schedule_files(d, e)))


def manage_command(d: Desired, args: list[str], workdir: str, interactive: bool = False) -> str:
    """`pinned manage`/`shell`: `manage.py ARGS…` in `workdir` (current) as the app user with its environment
    and the units' hardening, in a transient unit (systemd-run: exactly a unit's environment, its output on
    this terminal, its exit status returned). A shell command line, every value quoted."""
    lay, app = d.layout, d.state.app
    props = [f"User={app}", f"Group={app}", *environment_lines(d), *HARDENING,
             *(f"ReadWritePaths={lay.shared(n)}" for n in d.state.shared)]
    parts = ["systemd-run", "--quiet", "--collect", "--wait", "--pty" if interactive else "--pipe",
             "--service-type=exec", f"--working-directory={workdir}"]
    for p in props:
        parts += ["-p", p]
    script = runner("manage.py") + ' "$@"'
    # systemd-run expands $VAR in the command's arguments since systemd 254 unless told not to (older ones
    # neither expand nor know the option): asked on the host, so `$` reaches sh and the command as written.
    return ("e=; systemd-run --help 2>/dev/null | grep -q -- --expand-environment && e=--expand-environment=no; "
            "exec " + " ".join(shlex.quote(p) for p in parts[:1]) + " $e "
            + " ".join(shlex.quote(p) for p in [*parts[1:], "--", "/bin/sh", "-c", script, "pinned", *args]))


# ------------------------------------------------------------------ the planner


def _step(*args, **kwargs):
    from .plan import Step

    return Step(*args, **kwargs)


def plan_processes(d: Desired, host: HostSpec, o: HostObserved, release_dir: str, starting: bool,
                   restart_reason: str) -> list:
    """The steps of one web host's processes and schedules. `starting`: the pinned release's web units are
    (re)started in this run (so are its processes); `restart_reason`: why the current release restarts for a
    changed env or secret (its processes too)."""
    from .plan import ADD, CHANGE, REMOVE, config_step

    lay, app, rel = d.layout, d.state.app, d.release
    steps = []
    declared = d.state.processes
    changed_templates = set()
    for name, command in sorted(declared.items()):
        step = config_step(host.name, o, process_file(d, name, command), "prepare")
        if step:
            steps.append(step)
            changed_templates.add(name)
    units = tuple(lay.process_unit(n, rel.id) for n in sorted(declared))
    down = [u for u in units if not (o.unit_active(u) and o.unit_enabled(u))]
    if units and (starting or down or changed_templates or (restart_reason and o.current == rel.id)):
        if starting or down:
            why = "with the new release" if starting else f"not running: {', '.join(down)}"
            restart = False
        else:
            why = ("command changed: " + ", ".join(sorted(changed_templates))) if changed_templates else restart_reason
            restart = True
        steps.append(_step(host.name, CHANGE if restart else ADD, c.ProcessStart(
            units=units, release_id=rel.id, release_dir=release_dir, restart=restart, settle=SETTLE_SECONDS,
            socket_unit=lay.unit(rel.id, "socket"), service_unit=lay.unit(rel.id, "service"),
        ), f"{app}-{{{','.join(sorted(declared))}}}@{rel.id}", why, phase="start"))
    # Stop (after the switch): the processes of any other release, and those no longer declared; then the
    # templates of those no longer declared go.
    stale: dict[str, list[str]] = {}
    for unit, st in sorted(o.units.items()):
        parsed = lay.process_of_unit(unit)
        if parsed and (st.get("enabled") or st.get("active") not in (None, "inactive")):
            name, release = parsed
            if release != rel.id or name not in declared:
                stale.setdefault(release, []).append(unit)
    for release, stopping in sorted(stale.items()):
        gone = sorted({lay.process_of_unit(u)[0] for u in stopping} - set(declared))
        why = ", ".join(filter(None, ["no longer current" if release != rel.id else "",
                                      f"no longer in `processes:` ({', '.join(gone)})" if gone else ""]))
        steps.append(_step(host.name, REMOVE, c.ProcessStop(units=tuple(stopping)), f"{app}-*@{release}",
                           f"{why}: stopped (SIGTERM, up to {STOP_SECONDS} s)", phase="cleanup"))
    removed = tuple(f"{lay.unit_dir}/{f}" for f in sorted(o.unit_files)
                    if f.endswith("@.service") and f.removeprefix(lay.extra_unit_prefix)[:-len("@.service")]
                    not in declared)
    if removed:
        steps.append(_step(host.name, REMOVE, c.ProcessStop(units=(), remove=removed), ", ".join(removed),
                           "no longer in `processes:`: unit files removed", phase="cleanup"))
    # Schedules: after the switch (their service runs in `current`).
    wanted_names = {e.name for e in d.state.schedule}
    for entry in d.state.schedule:
        timer = lay.schedule_unit(entry.name)
        changed = [s for s in (config_step(host.name, o, f, "cleanup") for f in schedule_files(d, entry)) if s]
        steps += changed
        if changed or not (o.unit_enabled(timer) and o.unit_active(timer)):
            state = o.units.get(timer, {})
            steps.append(_step(host.name, ADD if not state.get("enabled") else CHANGE,
                               c.ScheduleTimer(timer, enable=True), timer,
                               f"{entry.on_calendar}: " + ("units changed" if changed and state.get("enabled") else
                                                           f"{state.get('active') or 'missing'}, "
                                                           f"enabled={bool(state.get('enabled'))}"),
                               phase="cleanup"))
    for name in sorted({lay.schedule_of_unit(f) for f in o.unit_files} - {None} - wanted_names):
        timer = lay.schedule_unit(name)
        files = tuple(f"{lay.unit_dir}/{lay.schedule_unit(name, k)}" for k in ("timer", "service")
                      if lay.schedule_unit(name, k) in o.unit_files)
        steps.append(_step(host.name, REMOVE, c.ScheduleTimer(timer, enable=False, remove=files), timer,
                           "no longer in `schedule:`: timer disabled, its units removed", phase="cleanup"))
    return steps
