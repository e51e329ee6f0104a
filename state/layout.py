"""Where things live on a server, by app name: the one place that builds a path or a name (folders,
files, links, units, sockets, databases, the lock). Planners, operations and the observe request take
them from here; remote scripts get them as arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    app: str

    @property
    def root(self) -> str:
        return f"/srv/{self.app}"

    @property
    def versions(self) -> str:
        return f"{self.root}/versions"

    @property
    def venvs(self) -> str:
        return f"{self.root}/venvs"

    @property
    def by_id(self) -> str:
        """Links `by-id/<release>` → the release folder: how the per-release units find it."""
        return f"{self.root}/by-id"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def history(self) -> str:
        return f"{self.root}/history.log"

    @property
    def directories(self) -> tuple[str, ...]:
        """The folders of the app root (root-owned: the app user cannot write its own code)."""
        return (self.root, self.versions, self.venvs, self.by_id)

    @property
    def shared_root(self) -> str:
        """Persistent folders (`shared:`), the same for every release: never in a release, never pruned."""
        return f"{self.root}/shared"

    def shared(self, name: str) -> str:
        return f"{self.shared_root}/{name}"

    def schema_dir(self, schema: int) -> str:
        return f"{self.versions}/{schema}"

    def release_dir(self, schema: int, release_id: str) -> str:
        return f"{self.versions}/{schema}/{release_id}"

    def building_dir(self, schema: int, release_id: str) -> str:
        return f"{self.versions}/{schema}/.{release_id}.building"

    def tarball(self, schema: int, release_id: str) -> str:
        """Where a release's archive is uploaded, beside its build folder."""
        return f"{self.versions}/{schema}/.{release_id}.tar.gz"

    def served(self, schema: int) -> str:
        """Marker: a release of this schema version has been current (its database took the site's writes)."""
        return f"{self.versions}/{schema}/served"

    @staticmethod
    def current_target(schema: int, release_id: str) -> str:
        """What `current` points at (relative to the root)."""
        return f"versions/{schema}/{release_id}"

    def by_id_link(self, release_id: str) -> str:
        return f"{self.by_id}/{release_id}"

    @staticmethod
    def by_id_target(schema: int, release_id: str) -> str:
        return f"../versions/{schema}/{release_id}"

    def last(self, schema: int) -> str:
        return f"{self.versions}/{schema}/last"

    def venv(self, requirements_hash: str) -> str:
        return f"{self.venvs}/{requirements_hash}"

    def database(self, schema: int) -> str:
        return f"{self.app}_v{schema}"

    def schema_of_database(self, name: str) -> int | None:
        """`<app>_v<N>` → N (None for any other name)."""
        prefix = f"{self.app}_v"
        number = name[len(prefix):] if name.startswith(prefix) else ""
        return int(number) if number.isdigit() else None

    def database_grant(self, schema: int) -> str:
        """A schema version's database as GRANT names it: `_` escaped, or it would be a wildcard
        (`shop_v0` would match `shopXv0`); privileges are granted per database, never by pattern."""
        return self.database(schema).replace("_", "\\_")

    @property
    def database_regex(self) -> str:
        """A REGEXP matching exactly the app's schema databases (`shop` never matches `shop_vip_v0`)."""
        return f"^{self.app}_v[0-9]+$"

    @property
    def secrets_dir(self) -> str:
        return f"/etc/pinned/{self.app}"

    @property
    def secrets(self) -> str:
        return f"{self.secrets_dir}/secrets.env"

    @property
    def env_file(self) -> str:
        """The app's plain configuration (`env:`), one `NAME="value"` a line: an EnvironmentFile= of its units."""
        return f"{self.secrets_dir}/env"

    @property
    def loaded(self) -> str:
        """What the running release was (re)started with: fingerprints of its env and secrets (never values)."""
        return f"{self.secrets_dir}/loaded.json"

    @property
    def scratch_root(self) -> str:
        """`scratch:` folders: <scratch_root>/<release id>/<path>, emptied at each start of the release."""
        return f"/var/cache/pinned-{self.app}"

    def scratch(self, release_id: str, path: str) -> str:
        return f"{self.scratch_root}/{release_id}/{path}"

    @property
    def run_dir(self) -> str:
        return f"/run/pinned-{self.app}"

    def socket(self, release_id: str) -> str:
        return f"{self.run_dir}/{release_id}.sock"

    def unit(self, release_id: str, kind: str = "service") -> str:
        return f"{self.app}@{release_id}.{kind}"

    @property
    def unit_prefix(self) -> str:
        """Every release unit's name starts with this (`<app>@`)."""
        return f"{self.app}@"

    @staticmethod
    def release_of_unit(unit: str) -> str:
        """`<app>@<release>.<kind>` → `<release>`."""
        return unit.split("@", 1)[1].rsplit(".", 1)[0]

    # ---- processes (`processes:`) and scheduled commands (`schedule:`), on each web host

    def process_template(self, name: str) -> str:
        return f"/etc/systemd/system/{self.app}-{name}@.service"

    def process_unit(self, name: str, release_id: str) -> str:
        return f"{self.app}-{name}@{release_id}.service"

    @property
    def extra_unit_prefix(self) -> str:
        """Every process and schedule unit's name starts with this (`<app>-`; an app's name has no `-`)."""
        return f"{self.app}-"

    def process_of_unit(self, unit: str) -> tuple[str, str] | None:
        """`<app>-<name>@<release>.service` → (name, release); None for any other unit."""
        m = re.fullmatch(re.escape(self.app) + r"-([a-z0-9][a-z0-9_-]*)@([^@/]+)\.service", unit)
        return (m.group(1), m.group(2)) if m else None

    def schedule_unit(self, name: str, kind: str = "timer") -> str:
        return f"{self.app}-schedule-{name}.{kind}"

    def schedule_of_unit(self, unit: str) -> str | None:
        m = re.fullmatch(re.escape(self.app) + r"-schedule-([a-z0-9][a-z0-9_-]*)\.(timer|service)", unit)
        return m.group(1) if m else None

    @property
    def unit_dir(self) -> str:
        return "/etc/systemd/system"

    @property
    def warm_prefix(self) -> str:
        """A warm release's timer and the service it triggers: `pinned-warm-<app>@<release>.{timer,service}`."""
        return f"pinned-warm-{self.app}@"

    def warm_timer(self, release_id: str) -> str:
        return f"{self.warm_prefix}{release_id}.timer"

    @property
    def warm_timer_template(self) -> str:
        return f"/etc/systemd/system/pinned-warm-{self.app}@.timer"

    @property
    def warm_service_template(self) -> str:
        return f"/etc/systemd/system/pinned-warm-{self.app}@.service"

    @property
    def lock(self) -> str:
        """The deploy lock: who holds it (one deploy of the app at a time on a host)."""
        return f"/run/lock/pinned-{self.app}.lock"

    @property
    def lock_undo_dir(self) -> str:
        """What undoes a temporary state (the write freeze) when the run holding the lock ends without
        undoing it itself: each file here is run by the lock's holder as it ends (pinned/lock.py)."""
        return f"{self.lock}.undo.d"

    def lock_undo(self, name: str) -> str:
        return f"{self.lock_undo_dir}/{name}"

    def venv_undo(self, requirements_hash: str) -> str:
        """The undo hook that stops a virtualenv's background build (venv_start.sh) if the run ends first."""
        return self.lock_undo(f"venv-{requirements_hash}")

    @property
    def packages_job(self) -> str:
        """A background install of Debian packages (packages_start.sh): its pid, apt's output, its exit status."""
        return f"/run/pinned-{self.app}-packages"

    @property
    def packages_undo(self) -> str:
        """The undo hook that holds the lock until a background install ended (packages_hold.sh) if the run ends
        first."""
        return self.lock_undo("packages")

    def migrate_undo(self, release_id: str) -> str:
        """The undo hook that holds the lock until a release's migration ended (run_guard.sh) if the run ends first."""
        return self.lock_undo(f"migrate-{release_id}")

    def build_undo(self, release_id: str) -> str:
        """The undo hook that stops a release's chained build (run_guard.sh) if the run ends while it runs."""
        return self.lock_undo(f"build-{release_id}")

    @property
    def nginx_freeze(self) -> str:
        """Included by the site: empty, or (during a write freeze) the rule that refuses writes."""
        return f"/etc/nginx/pinned/{self.app}-freeze.conf"

    @property
    def frozen_page(self) -> str:
        """The page a refused write gets during a write freeze (served by nginx with 503)."""
        return f"/etc/nginx/pinned/{self.app}-frozen.html"

    @property
    def freeze_marker(self) -> str:
        """Exists while the web host refuses writes: the app's runtime turns a write the database refused
        into 503 + Retry-After, never a bare 500."""
        return f"/run/pinned-{self.app}-write-freeze"

    @property
    def secrets_memory_key(self) -> str:
        """Where the db host's secrets wait in the deploying process's memory on their way to web hosts."""
        return f"{self.app}:{self.secrets}"

    @property
    def socket_template(self) -> str:
        return f"/etc/systemd/system/{self.app}@.socket"

    @property
    def service_template(self) -> str:
        return f"/etc/systemd/system/{self.app}@.service"

    @property
    def nginx_site(self) -> str:
        return f"/etc/nginx/conf.d/pinned-{self.app}.conf"

    @property
    def access_log(self) -> str:
        """nginx's log of the site's requests (a rollout's canary watch counts its 5xx answers)."""
        return f"/var/log/nginx/pinned-{self.app}.access.log"

    @property
    def nginx_upstream(self) -> str:
        return f"/etc/nginx/pinned/{self.app}-upstream.conf"

    @property
    def upstream_name(self) -> str:
        return f"pinned_{self.app}"

    @staticmethod
    def sudoers(user: str) -> str:
        return f"/etc/sudoers.d/pinned-{user}"

    # ---- HTTPS (site.tls) on the web hosts

    @property
    def tls_dir(self) -> str:
        return f"{self.secrets_dir}/tls"

    @property
    def tls_certificate(self) -> str:
        """An uploaded certificate (site.tls.certificate): root 0644."""
        return f"{self.tls_dir}/fullchain.pem"

    @property
    def tls_key(self) -> str:
        """Its private key: root 0600."""
        return f"{self.tls_dir}/privkey.pem"

    @property
    def acme_webroot(self) -> str:
        """certbot's webroot: nginx serves `/.well-known/acme-challenge/` on port 80 from here."""
        return f"{self.root}/acme"

    @property
    def cert_name(self) -> str:
        """certbot's name of the site's certificate (its lineage)."""
        return f"pinned-{self.app}"

    @property
    def acme_certificate(self) -> str:
        return f"/etc/letsencrypt/live/{self.cert_name}/fullchain.pem"

    @property
    def acme_key(self) -> str:
        return f"/etc/letsencrypt/live/{self.cert_name}/privkey.pem"

    @property
    def acme_renewal(self) -> str:
        """certbot's renewal configuration of the lineage (server, webroot, deploy hook)."""
        return f"/etc/letsencrypt/renewal/{self.cert_name}.conf"

    @property
    def acme_ca_bundle(self) -> str:
        """site.tls.acme.ca_bundle on the host (a test or private ACME server's CA)."""
        return f"{self.secrets_dir}/acme-ca.pem"

    @property
    def certbot_dropin(self) -> str:
        """certbot.service's drop-in giving renewals the CA bundle (REQUESTS_CA_BUNDLE)."""
        return f"/etc/systemd/system/certbot.service.d/pinned-{self.app}.conf"

    # ---- backups (on the db host): a root-only folder of compressed dumps, a script, a timer

    @property
    def backups_dir(self) -> str:
        """The app's backups: `<UTC time>-<database>.sql.gz`, root-only (0700 folder, 0600 files)."""
        return f"/var/backups/pinned/{self.app}"

    def backup_file(self, backup_id: str) -> str:
        return f"{self.backups_dir}/{backup_id}"

    @property
    def backup_id_pattern(self) -> str:
        """A backup's file name (its id): which database, and when (sorts by time). POSIX ERE and Python re
        alike, no backslash (it is also an argument in a unit file)."""
        return f"^[0-9]{{8}}T[0-9]{{6}}Z-{self.app}_v[0-9]+[.]sql[.]gz$"

    @property
    def shared_backup_pattern(self) -> str:
        """A backup of a web host's shared folders (`pinned backup` with `shared:`), in that host's backups
        folder: `<UTC time>-shared.tar.gz`."""
        return "^[0-9]{8}T[0-9]{6}Z-shared[.]tar[.]gz$"

    def is_shared_backup(self, backup_id: str) -> bool:
        return re.fullmatch(self.shared_backup_pattern.strip("^$"), backup_id) is not None

    def database_of_backup(self, backup_id: str) -> str | None:
        """`20261126T111500Z-<app>_v1.sql.gz` → `<app>_v1` (None for any other name)."""
        if not re.fullmatch(self.backup_id_pattern.strip("^$"), backup_id):
            return None
        return backup_id.split("-", 1)[1].removesuffix(".sql.gz")

    @property
    def backup_script(self) -> str:
        """The backup script installed on the db host (run by the timer's service)."""
        return f"/usr/local/lib/pinned/backup-{self.app}.sh"

    @property
    def backup_service(self) -> str:
        return f"pinned-backup-{self.app}.service"

    @property
    def backup_timer(self) -> str:
        return f"pinned-backup-{self.app}.timer"

    @property
    def backup_service_file(self) -> str:
        return f"/etc/systemd/system/{self.backup_service}"

    @property
    def backup_timer_file(self) -> str:
        return f"/etc/systemd/system/{self.backup_timer}"

    @property
    def backup_files(self) -> tuple[str, ...]:
        """What scheduled backups install on the db host (removed with them)."""
        return (self.backup_script, self.backup_service_file, self.backup_timer_file)


NGINX_DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
MARIADB_NETWORK_CONF = "/etc/mysql/mariadb.conf.d/90-pinned.cnf"
MARIADB_SOCKET = "/run/mysqld/mysqld.sock"
SETTINGS_MODULE = "pinned_settings"
