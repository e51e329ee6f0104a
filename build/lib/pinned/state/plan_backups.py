"""Scheduled backups (the state file's `backups:`), planned for the db host (pure).

Declared: the backup script (the same file `pinned backup` runs, installed as a managed file, 0755), a
oneshot service that runs it on the pinned schema's database and prunes beyond `keep`, a timer, enabled and
active. Removed from the state file: the timer is disabled and the three files go (the backups stay).
Steps run in the `cleanup` phase: after the switch, so the service names the database that is current.
"""

from __future__ import annotations

from . import changes as c
from .desired import Desired, ManagedFile
from .observed import HostObserved
from .plan import ADD, CHANGE, REMOVE, Step, config_step


def backup_script_text() -> str:
    from pinned.operations.backups import BACKUP_SCRIPT  # the script's text: read from operations/remote/

    return BACKUP_SCRIPT


def backup_files(d: Desired, database: str) -> tuple[ManagedFile, ...]:
    """The script, the service (backs up `database`) and the timer, for the state file's `backups:`."""
    lay, app, backups = d.layout, d.state.app, d.state.backups
    assert backups is not None
    service = (
        "# Managed by pinned: the scheduled backup of the current schema's database (pinned backups).\n"
        "[Unit]\n"
        f"Description=pinned: back up {database} of {app}, keep the newest {backups.keep}\n"
        "Requires=mariadb.service\nAfter=mariadb.service\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart={lay.backup_script} {lay.backups_dir} {database} {backups.keep} "
        f"{lay.backup_id_pattern.replace('$', '$$')}\n"  # $$: a literal $ in a unit file
    )
    timer = (
        "# Managed by pinned: when the scheduled backups run (backups.on_calendar).\n"
        "[Unit]\n"
        f"Description=pinned: scheduled backups of {app}\n\n"
        "[Timer]\n"
        f"OnCalendar={backups.on_calendar}\nPersistent=true\nUnit={lay.backup_service}\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return (
        ManagedFile(lay.backup_script, backup_script_text(), "backup script", mode="0755"),
        ManagedFile(lay.backup_service_file, service, "backup service", reload="systemd"),
        ManagedFile(lay.backup_timer_file, timer, "backup timer", reload="systemd"),
    )


def plan_backups(d: Desired, o: HostObserved, schema: int) -> list[Step]:
    """The db host's scheduled backups of schema version `schema`'s database (the pinned one's)."""
    host, lay = d.db_host.name, d.layout
    timer = lay.backup_timer
    if d.state.backups is None:
        present = tuple(path for path in lay.backup_files if o.files.get(path) is not None)
        if present or o.unit_enabled(timer) or o.unit_active(timer):
            return [Step(host, REMOVE, c.BackupTimer(timer, enable=False, remove=present), timer,
                         "no `backups:` in the state file: timer disabled, its units and script removed "
                         "(the backups stay)", phase="cleanup")]
        return []
    steps = [s for s in (config_step(host, o, f, "cleanup") for f in backup_files(d, lay.database(schema))) if s]
    if steps or not (o.unit_enabled(timer) and o.unit_active(timer)):
        state = o.units.get(timer, {})
        reason = (f"{d.state.backups.on_calendar}, keep {d.state.backups.keep}: "
                  + ("units changed" if steps and state.get("enabled") else
                     f"{state.get('active') or 'missing'}, enabled={bool(state.get('enabled'))}"))
        steps.append(Step(host, ADD if not state.get("enabled") else CHANGE, c.BackupTimer(timer, enable=True),
                          timer, reason, phase="cleanup"))
    return steps
