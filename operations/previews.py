"""Previews (state/previews.py): a release running beside `current` with its own units, nginx server and
database account. Every value is an argument of a script (quoted); SQL naming a password is made on the host."""

from __future__ import annotations

from pyinfra.api import operation

from .scripts import run_sh, script

PREVIEW_SQL = script("preview_sql.py")


@operation()
def preview_account(user: str, host: str, secrets: str, password_key: str, privileges: str, database: str):
    """The preview's account: its password from the secrets file, `privileges` on `database` only."""
    yield run_sh("preview_db.sh", PREVIEW_SQL, "account", secrets, user, host, password_key, privileges, database)


@operation()
def preview_migrate(app: str, release_dir: str, database: str, user: str, password_key: str):
    """Migrate the preview's own copy of the database with its release."""
    yield run_sh("preview_migrate.sh", app, release_dir, database, user, password_key)


@operation()
def preview_start(socket_unit: str, service_unit: str, socket: str, health_url: str, health_host: str,
                  restart: bool = False):
    """Start (or restart) the preview's units and check its health URL on its own socket."""
    yield run_sh("preview_start.sh", socket_unit, service_unit, "1" if restart else "0", socket, health_host,
                 health_url)


@operation()
def preview_remove(socket_unit: str, service_unit: str, files: tuple[str, ...]):
    """Stop the preview, remove its unit files and nginx server, reload systemd and nginx."""
    yield run_sh("preview_remove.sh", socket_unit, service_unit, *files)


@operation()
def preview_drop(accounts: tuple[str, ...], database: str = ""):
    """Drop the preview's accounts and its own database."""
    yield run_sh("preview_db.sh", PREVIEW_SQL, "drop", database, *accounts)
