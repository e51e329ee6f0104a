"""Which operation applies which change: deploy.py calls it with the change's fields, nothing else."""

from pinned.state import changes as c

from . import backups, database, files, freeze, release, system

OPERATIONS = {
    c.Packages: system.packages,
    c.Service: system.service,
    c.User: system.user,
    c.Directory: system.directory,
    c.Secrets: system.secrets_file,
    c.SecretsRead: system.secrets_read,
    c.SecretsCopy: system.secrets_copy,
    c.Database: database.database,
    c.DbUser: database.account,
    c.ConfigFile: files.config_file,
    c.RemoveFile: files.remove_file,
    c.Venv: release.venv,
    c.Build: release.build,
    c.Migrate: database.migrate,
    c.SchemaRecord: database.schema_file,
    c.Start: release.start,
    c.Restart: release.restart,
    c.Link: files.link,
    c.Switch: release.switch,
    c.WriteFreeze: freeze.write_freeze,
    c.DatabaseGuard: freeze.database_guard,
    c.Stop: release.stop,
    c.Warm: release.warm,
    c.Prune: release.prune,
    c.BackupTimer: backups.backup_timer,
    c.Watch: release.watch,
}
