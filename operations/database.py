"""MariaDB: the schema versions' databases (created empty or copied and verified), the app's account,
migrations."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand, operation

from .files import RELEASE_META, sh
from .scripts import chain, run_py, run_sh, script

# SQL that names the password is made on the server, from the secrets file, and piped to mysql:
# the password is never in a command line, the plan or pyinfra's output.
ACCOUNT_SCRIPT = script("account_sql.py")

# Compare two databases table by table with exact row counts: the copy is used only if they match.
VERIFY_SCRIPT = script("verify_copy.py")

COPY_SCRIPT = script("copy_database.sh")


@operation()
def database(database: str, copy_from: str = "", recreate: bool = False, adopt_from: str = ""):
    """Create a schema version's database (utf8mb4): empty, or a verified copy of another one.
    A failed copy drops the new database again; the source is only read. With `adopt_from` (a promoted
    preview's own database, `promote: keep-data`): its tables are renamed into the new one, checked, and the
    emptied preview database is dropped (remote/adopt_database.py)."""
    if adopt_from:
        yield run_py("adopt_database.py", adopt_from, database, "1" if recreate else "0")
        return
    yield sh(COPY_SCRIPT, database, copy_from, "1" if recreate else "0", VERIFY_SCRIPT)


@operation()
def account(user: str, host: str, secrets: str, grant: tuple[str, ...] = (), revoke: tuple[str, ...] = ()):
    """The app's database account: ALL on the databases in `grant` (by name), `revoke` taken away."""
    yield run_sh("account.sh", secrets, user, host, " ".join(grant), " ".join(revoke), ACCOUNT_SCRIPT)


# On failure the new database is dropped (the app's account may: it has ALL on its databases) and the
# release is marked failed; `current` has not moved, so the site keeps serving the previous release.
MIGRATE_SCRIPT = script("migrate.sh")
MIGRATE_DROP = script("migrate_drop.py")  # run by MIGRATE_SCRIPT with the release's python


@operation()
def migrate(app: str, release_dir: str, database: str, release_id: str, drop_on_failure: bool = True,
            undo: str = ""):
    """Run Django's migrations with a release against its schema version's database, once: a new copy
    (dropped again if they fail), or the live database (`schema_change: in_place`: never dropped). With `undo`,
    a run that ends while they run holds the deploy lock until they ended (run_guard.sh `wait`): its failure
    path (mark the release failed, drop its copy) never meets a next run that has made that database anew."""
    migration = sh(MIGRATE_SCRIPT, app, release_dir, database, release_id, RELEASE_META, MIGRATE_DROP,
                   "1" if drop_on_failure else "0")
    if not undo:
        yield migration
        return
    yield chain(run_sh("run_guard.sh", undo, "wait"), migration, StringCommand("rm", "-f", QuoteString(undo)))


@operation()
def schema_file(schema_dir: str, info: str):
    """Record a schema version on a web host: versions/<N>/schema.json (written atomically)."""
    yield StringCommand("mkdir", "-p", QuoteString(schema_dir))
    yield run_sh("schema_file.sh", schema_dir, info)


def drop_command(user: str, database: str, grant: str) -> StringCommand:
    """Drop a schema version's database and its grants (`pinned drop-database`, under the deploy lock)."""
    return run_py("drop_database.py", user, database, grant)
