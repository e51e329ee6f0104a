"""A release's processes (`processes:`) and the scheduled commands' timers (`schedule:`)."""

from __future__ import annotations

from pyinfra.api import operation

from .backups import backup_timer
from .files import RELEASE_META
from .scripts import run_py, run_sh


@operation()
def process_start(units: tuple[str, ...], release_id: str, release_dir: str, restart: bool = False, settle: int = 3,
                  socket_unit: str = "", service_unit: str = ""):
    """Start (or restart) a release's process units, and fail unless each is still running, never restarted,
    `settle` seconds later (then they and the release's web units are stopped, the release marked failed)."""
    yield run_sh("process_start.sh", release_id, release_dir, "1" if restart else "0", str(settle), socket_unit,
                 service_unit, RELEASE_META, *units)


@operation()
def process_stop(units: tuple[str, ...], remove: tuple[str, ...] = ()):
    """Stop and disable process units (SIGTERM, up to their TimeoutStopSec), then remove unit files."""
    yield run_sh("process_stop.sh", str(len(units)), *units, *remove)


schedule_timer = backup_timer  # the same: enable (and restart) one timer, or disable it and remove its files


def status_command(request: str):
    """What `pinned status` asks a web host (remote/status.py: units, timers, disk use, a health check now)."""
    return run_py("status.py", request)
