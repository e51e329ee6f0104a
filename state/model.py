"""The state file: the desired state of one environment, validated by pydantic.

Every value here may end up in a shell command, a SQL statement, a unit file or an nginx config, so
each field is restricted to what it can sanely hold; the operations still quote everything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from .hosts import Hosts, SshOptions

# What a fresh server needs for any pinned site (the sandbox's warm layer installs exactly these).
SYSTEM_PACKAGES = ("nginx", "mariadb-server", "python3-venv")
VENV_PACKAGES = ("python3-venv",)  # what a release's virtualenv build needs (operations/remote/venv_build.sh)
# Installed into every release's virtualenv next to the app's own requirements.
RUNTIME_REQUIREMENTS = ("gunicorn>=25", "PyMySQL>=1.1.3")
DEFAULT_ENV = "sandbox"
# Every database pinned creates, and the app's connections (operations/remote/copy_database.sh says it too).
DATABASE_COLLATION = "utf8mb4_unicode_ci"

AppName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,23}$")]
PackageName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9+.-]{0,62}$")]
UserName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
ServerName = Annotated[str, StringConstraints(pattern=r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}$")]
ModulePath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")]
SshKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com)"
        r" [A-Za-z0-9+/]+={0,3}( [\x21-\x7e ]{0,200})?$"
    ),
]


# The app's environment variables that pinned itself sets (its settings module, the database, the secrets it
# generates, what systemd and gunicorn put there): a state file's `env:` and `secrets:` may not name them.
PINNED_ENV_NAMES = frozenset({
    "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DB_PASSWORD", "DB_NAME", "DB_USER", "DB_HOST", "PYTHONDONTWRITEBYTECODE",
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
    "NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "MAINPID", "SERVER_SOFTWARE",
})
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
SHARED_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
# A value (of `env:`, or a secret's): one line of text; tabs allowed, no other control character (systemd's
# EnvironmentFile= and the settings module read it back exactly; see state.layout.env_line).
ENV_VALUE = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"


def env_name_error(name: str, what: str) -> str | None:
    """Why `name` cannot be one of the app's environment variables (None: it can)."""
    if not isinstance(name, str) or not re.fullmatch(ENV_NAME, name):
        return f"{what} name {name!r} is not a variable name (letters, digits and _, not starting with a digit)"
    if name in PINNED_ENV_NAMES or name.upper().startswith("PINNED_"):
        return f"{what} name {name!r} is pinned's own (it sets {name} itself)" if name in PINNED_ENV_NAMES else \
            f"{what} name {name!r} is pinned's own (PINNED_* names are reserved)"
    return None


class StateFileError(Exception):
    """A state file that cannot be used; the message names the file and the field."""


def _relative_path(value: str, what: str) -> str:
    path = Path(value)
    if value in ("", ".") or value == "./":
        return "."
    if path.is_absolute() or ".." in path.parts or not re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        raise ValueError(f"{what} must be a relative path inside the repository (letters, digits, _ . / -)")
    return str(path)


# Top-level names of a release that are pinned's own (operations/remote/release_files.py OWN): no link there.
RELEASE_OWN = frozenset({"assets", ".pinned", ".venv", "pinned_settings.py", "pinned_runtime.py"})


def link_path(value: str, what: str) -> str:
    """A path inside the project (`django.project_dir`) where each release gets a link: relative, no `..`, not
    the project itself nor one of pinned's own files."""
    path = _relative_path(value, what)
    if path == "." or path.split("/")[0] in RELEASE_OWN or path == "manage.py":
        raise ValueError(f"{what} {value!r} must name a folder inside the project (not the project itself, "
                         f"manage.py, or pinned's own {', '.join(sorted(RELEASE_OWN))})")
    return path


class SharedFolder(BaseModel):
    """A persistent folder with a link in each release (Capistrano's linked_dirs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The folder `/srv/<app>/shared/<name>`: letters, digits, _ and -.")
    link: str | None = Field(
        default=None,
        description="A path inside the project (`django.project_dir`), e.g. `cache`: each release built has a "
        "symbolic link there to the folder, for a project that writes below its BASE_DIR. Relative, no `..`; "
        "nothing may be committed at that path.",
    )

    @field_validator("link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return None if value is None else link_path(value, "link")


class Django(BaseModel):
    """How to run the Django project found in the repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    settings: ModulePath = Field(description="The project's settings module, e.g. `mysite.settings`.")
    wsgi: str = Field(
        default="",
        description="The WSGI application as `module:name`; default: the one the project's settings name "
        "(`WSGI_APPLICATION`, found at start as Django's runserver finds it), else Django's default handler.",
    )
    project_dir: str = Field(default=".", description="Folder of `manage.py` inside the repository.")
    requirements: str = Field(
        default="requirements.txt", description="The pip requirements file, relative to `project_dir`."
    )

    @field_validator("project_dir")
    @classmethod
    def _project_dir(cls, value: str) -> str:
        return _relative_path(value, "project_dir")

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, value: str) -> str:
        if _relative_path(value, "requirements") == ".":
            raise ValueError("requirements must name a file")
        return _relative_path(value, "requirements")

    @field_validator("wsgi")
    @classmethod
    def _wsgi(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("wsgi must look like `package.wsgi:application`")
        return value

    @property
    def wsgi_app(self) -> str:
        # Not guessed from the settings module's name: `config.settings.production` has no
        # `config.settings.wsgi`. pinned_runtime resolves settings.WSGI_APPLICATION when gunicorn loads it.
        return self.wsgi or "pinned_runtime:application"


# Let's Encrypt's production ACME directory: the default of `site.tls.acme.directory`.
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
# A local file the state file names (a certificate, a key, a CA bundle): resolved from the state file's folder.
LocalPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./~+-]{1,255}$")]
EMAIL = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"
HTTPS_URL = r"^https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$"


class Acme(BaseModel):
    """A certificate from an ACME CA (certbot, http-01 challenge served by the site's nginx on port 80)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str = Field(
        pattern=EMAIL,
        description="The ACME account's e-mail (expiry notices); registered at the first certificate.",
    )
    directory: str = Field(
        default=LETS_ENCRYPT, pattern=HTTPS_URL,
        description="The ACME directory URL (default: Let's Encrypt's production directory).",
    )
    ca_bundle: LocalPath | None = Field(
        default=None,
        description="For a test or private ACME server only: a local PEM file of the CA that signs the ACME "
        "directory's own HTTPS certificate; certbot on the web hosts trusts it (and only it: every renewal "
        "on that host) through `REQUESTS_CA_BUNDLE`. Unset: the host's CA store.",
    )


class Tls(BaseModel):
    """HTTPS: an uploaded certificate and key, or one from an ACME CA; port 80 then redirects to HTTPS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: LocalPath | None = Field(
        default=None,
        description="A local PEM file: the site's certificate and its chain (leaf first), uploaded to the web "
        "hosts. With `key`; not with `acme`.",
    )
    key: LocalPath | None = Field(
        default=None,
        description="A local PEM file: the certificate's private key (unencrypted), uploaded to the web hosts "
        "(root, 0600) over SSH's stdin, never shown. Must match `certificate` (checked before any host).",
    )
    acme: Acme | None = Field(default=None, description="Get the certificate from an ACME CA instead.")
    port: int = Field(default=443, ge=1, le=65535, description="The port nginx serves HTTPS on.")
    hsts: int = Field(
        default=0, ge=0, le=63072000,
        description="`Strict-Transport-Security: max-age=` this many seconds on every HTTPS answer; 0: no HSTS "
        "header (browsers remember it: start small).",
    )

    @model_validator(mode="after")
    def _one_source(self):
        uploaded = self.certificate is not None or self.key is not None
        if uploaded and self.acme is not None:
            raise ValueError("give either certificate and key, or acme, not both")
        if not uploaded and self.acme is None:
            raise ValueError("give certificate and key (local files), or acme: {email: ...}")
        if uploaded and (self.certificate is None or self.key is None):
            raise ValueError(f"{'key' if self.key is None else 'certificate'} is missing: give both certificate "
                             "and key")
        return self


class Site(BaseModel):
    """How nginx serves the site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_names: list[ServerName] = Field(
        default_factory=list,
        description="nginx `server_name`s (also Django's ALLOWED_HOSTS). Empty: the site answers any name "
        "on its port (nginx `default_server`), and ALLOWED_HOSTS holds the host's address.",
    )
    port: int = Field(default=80, ge=1, le=65535, description="The port nginx listens on for this site.")
    static_url: str = Field(
        default="/static/",
        pattern=r"^/[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*/$",
        description="URL prefix nginx serves from `current/assets` (the project's STATIC_URL).",
    )
    health_url: str = Field(
        default="/",
        pattern=r"^/[A-Za-z0-9_./-]*$",
        description="Path that must answer 2xx before a release is switched to.",
    )
    media_url: str = Field(
        default="",
        pattern=r"^(/[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*/)?$",
        description="URL prefix nginx serves the uploads from, straight from the shared folder `media` (which "
        "`shared:` must list): files only, with `X-Content-Type-Options: nosniff` and a sandboxing "
        "Content-Security-Policy (an uploaded page runs no script). Also Django's MEDIA_URL; MEDIA_ROOT is the "
        "folder. Empty: not served.",
    )
    max_body: str = Field(
        default="20m", pattern=r"^[1-9][0-9]{0,5}[km]?$",
        description="The largest request body nginx accepts (`client_max_body_size`: e.g. `20m`, `512k`); a larger "
        "upload gets 413.",
    )
    workers: int = Field(default=2, ge=1, le=64, description="gunicorn worker processes per release.")
    frozen_message: str = Field(
        default="This site is being updated: changes are paused for a few seconds. Please try again shortly.",
        min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$",
        description="The page (plain text, one line) a write request gets, with 503 and `Retry-After`, "
        "during a schema change's write freeze.",
    )
    tls: Tls | None = Field(default=None, description="HTTPS (off when absent).")

    @model_validator(mode="after")
    def _media_url(self):
        if self.media_url and self.media_url == self.static_url:
            raise ValueError("media_url must differ from static_url")
        if self.tls and self.tls.port == self.port:
            raise ValueError(f"tls.port and port are both {self.port}: HTTPS needs a port of its own")
        if self.tls and self.tls.acme and self.port != 80:
            raise ValueError("site.tls.acme: the ACME http-01 challenge comes to port 80: site.port must be 80")
        if self.tls and self.tls.acme and not self.server_names:
            raise ValueError("site.tls.acme needs server_names: the names the certificate is for")
        wildcards = [n for n in self.server_names if n.startswith("*.")]
        if self.tls and self.tls.acme and wildcards:
            raise ValueError(f"site.tls.acme cannot get a certificate for {', '.join(wildcards)}: the http-01 "
                             "challenge does not cover wildcards (upload a certificate instead)")
        return self


class User(BaseModel):
    """An extra system user (e.g. a deploy user) converged with the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: UserName = Field(description="Login name.")
    ssh_keys: list[SshKey] = Field(default_factory=list, description="Public keys for `authorized_keys`.")
    sudo: bool = Field(default=False, description="Passwordless sudo (a file in /etc/sudoers.d).")


# What a systemd calendar expression may contain (checked again by `systemd-analyze calendar` when this
# machine has it): no quotes, no newlines, nothing a unit file or a shell would read otherwise.
CALENDAR = r"^[A-Za-z0-9*:,./~+ -]{1,100}$"


@cache
def _systemd_calendar_error(expression: str) -> str | None:
    """What `systemd-analyze calendar` says is wrong with an expression (None: valid, or no systemd here)."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        from .calendar import subset_error

        error = subset_error(expression)
        return f"{error}; without systemd-analyze on this machine pinned accepts a subset (see the README)" \
            if error else None
    try:
        proc = subprocess.run([tool, "calendar", expression], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
    return lines[0] if lines else f"systemd-analyze calendar exited {proc.returncode}"


class Backups(BaseModel):
    """Scheduled backups of the current schema's database on the db host (a systemd timer); removed: timer off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_calendar: str = Field(
        default="daily",
        description="When, as a systemd calendar expression (`OnCalendar=`), e.g. `daily`, `*-*-* 03:30:00`, "
        "`Mon..Fri 12:00`; checked with `systemd-analyze calendar` (without it: a subset, see the README).",
    )
    keep: int = Field(
        default=7, ge=1, le=10000,
        description="Backups kept on the db host: each scheduled backup removes the app's backups beyond the "
        "newest `keep` (manual, pre-restore and pre-drop ones included).",
    )

    @field_validator("on_calendar")
    @classmethod
    def _on_calendar(cls, value: str) -> str:
        if not re.fullmatch(CALENDAR, value) or value != value.strip():
            raise ValueError("on_calendar must be a systemd calendar expression (letters, digits, spaces and "
                             "* : , . / ~ + -), e.g. daily or '*-*-* 03:30:00'")
        error = _systemd_calendar_error(value)
        if error:
            raise ValueError(f"on_calendar is not a systemd calendar expression ({error})")
        return value


# A process's or a scheduled job's name: part of its systemd unit names (`<app>-<name>@<release>.service`,
# `<app>-schedule-<name>.timer`), so nothing systemd or a shell reads otherwise.
UNIT_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# A command: one line of printable text (tabs allowed), run by /bin/sh in the release's folder.
COMMAND = r"^[^\x00-\x08\x0a-\x1f\x7f]{1,1000}$"


def _command(value: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(COMMAND, value) or not value.strip():
        raise ValueError(f"{what} must be one line of text (1 to 1000 characters, no newline or other control "
                         "character), e.g. 'python manage.py process_queue'")
    return value


def _unit_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(UNIT_NAME, value):
        raise ValueError(f"{what} {value!r} is not a safe unit name: lowercase letters, digits, _ and -, starting "
                         "with a letter or digit, at most 32 characters")
    return value


class Schedule(BaseModel):
    """A command run on a calendar (a systemd timer and a oneshot service) in the *current* release."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Its name: the units `<app>-schedule-<name>.timer`/`.service` (lowercase "
                      "letters, digits, _ and -).")
    command: str = Field(description="The command, run by /bin/sh in the current release's folder as the app "
                         "user with its environment; one starting with `manage.py` runs with the release's python.")
    on_calendar: str = Field(
        description="When, as a systemd calendar expression (`OnCalendar=`), e.g. `daily`, `*:0/15`; checked with "
        "`systemd-analyze calendar` where this machine has it, else against a subset (see the README).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _unit_name(value, "schedule name")

    @field_validator("command")
    @classmethod
    def _cmd(cls, value: str) -> str:
        return _command(value, "command")

    @field_validator("on_calendar")
    @classmethod
    def _on_calendar(cls, value: str) -> str:
        return Backups._on_calendar(value)


DURATION = re.compile(r"^(\d{1,5})\s*(s|m|min)?$")
RATE = re.compile(r"^(\d{1,3}(?:\.\d{1,3})?)\s*%$")


class Rollout(BaseModel):
    """Switching web hosts a few at a time: a canary first, watched, then the rest in batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary: int = Field(default=1, ge=1, le=1000,
                        description="How many web hosts switch first (in the order of `hosts.web`) and are watched.")
    batch: int = Field(default=1, ge=1, le=1000,
                       description="How many web hosts switch at once after the canary's watch, batch after batch.")
    watch: int = Field(
        default=30, ge=1, le=3600,
        description="How long the canary is watched after its switch, e.g. `30s`, `2m` (seconds if a bare number): "
        "its health URL every second, and the share of 5xx answers in nginx's log of the site on that host.",
    )
    max_error_rate: float = Field(
        default=1.0, ge=0, le=100,
        description="The most 5xx answers the canary may give during the watch, in percent of its requests (`1%`). "
        "More, or a failed health check, switches the canary back to the release it served and stops the run: "
        "the other web hosts never switch.",
    )

    @field_validator("watch", mode="before")
    @classmethod
    def _watch(cls, value):
        if isinstance(value, str):
            match = DURATION.fullmatch(value.strip())
            if not match:
                raise ValueError(f"watch {value!r} must be a duration like 30s or 2m")
            return int(match.group(1)) * (60 if match.group(2) in ("m", "min") else 1)
        return value

    @field_validator("max_error_rate", mode="before")
    @classmethod
    def _rate(cls, value):
        if isinstance(value, str):
            match = RATE.fullmatch(value.strip())
            if not match:
                raise ValueError(f"max_error_rate {value!r} must be a percentage like 1% or 0.5%")
            return float(match.group(1))
        return value


# A preview's name: a DNS label and a systemd unit / MariaDB name part (`<app>_pv_<name>`, `-` as `_`).
PreviewName = Annotated[str, StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$")]


class Preview(BaseModel):
    """A release running beside `current` at its own address (`previews:`), with its own units and nginx server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release: str = Field(
        pattern=r"^[0-9a-f]{7,40}$",
        description="The release it runs: a commit hash (`pinned preview add NAME REF` writes it).",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535,
        description="The port nginx serves it on (every web host); not the site's port, 443, or another preview's.",
    )
    host: bool = Field(
        default=False,
        description="Served at `<name>.<first of site.server_names>` on the site's port instead of a port.",
    )
    database: Literal["read", "write"] = Field(
        default="read",
        description="With the current schema: the current database through its own account `<app>_pv_<name>`, "
        "with SELECT only (`read`) or ALL (`write`). With other migrations it gets its own copy of the current "
        "database, `<app>_pv_<name>`, migrated, dropped with the preview (this field does not apply).",
    )
    promote: Literal["fresh-copy", "keep-data"] = Field(
        default="fresh-copy",
        description="What pinning its release does with a preview that has its own database (other migrations): "
        "`fresh-copy` makes the schema version's database `<app>_v<N>` a fresh copy of the current one, migrated "
        "again (the preview's data is dropped); `keep-data` adopts the preview's database as it is (its tables "
        "are renamed into `<app>_v<N>`: no copy, no second migration, no write freeze) — writes made to the "
        "current database since the preview's copy are then not in it (the plan warns). Keep the preview in the "
        "state file for the run that pins it. Only for a preview with other migrations than the pinned release.",
    )

    @model_validator(mode="after")
    def _address(self):
        if (self.port is None) == (not self.host):
            raise ValueError("a preview needs exactly one address: `port: N` or `host: true`")
        return self


class State(BaseModel):
    """One environment of one site (the file `<env>.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: AppName = Field(
        description="Name of the site: the system user/group, `/srv/<app>`, the databases `<app>_v<N>`, "
        "the systemd units `<app>@<release>`. Production and staging on one host need different names."
    )
    repository: str = Field(
        min_length=1,
        description="The git repository to build releases from: a path (relative to the state file) or URL.",
    )
    release: str = Field(
        pattern=r"^[0-9a-f]{7,40}$",
        description="The pinned release: a commit hash (`pinned pin REF` writes it).",
    )
    django: Django
    hosts: Hosts | Literal["sandbox"] | None = Field(
        default=None,
        description="The servers: `{web: [name, ...], db: name}` (a name, or `{name: ..., ssh_user: ..., "
        "ssh_port: ..., ssh_key: ..., sudo: ..., proxy_jump: ..., address: ...}`; one host may be both), or "
        "`sandbox` for the running sandbox's hosts. Required to deploy.",
    )
    ssh: SshOptions | None = Field(default=None, description="SSH options for every host: `user`, `port`, "
                                   "`key`, `sudo`, `proxy_jump`, `known_hosts`, `host_key_checking`.")
    site: Site = Field(default_factory=Site)
    keep_releases: int = Field(
        default=5, ge=1, le=1000,
        description="Releases kept on disk per schema version. Never pruned: current, the pinned one, any "
        "schema's `last`, or one newer than the pinned; failed releases go first.",
    )
    keep_warm: str = Field(
        default="10m", pattern=r"^(0|[1-9][0-9]{0,4}[smh])$",
        description="After a switch, the release that was serving stays warm (its socket and gunicorn keep running) "
        "this long (`90s`, `10m`, `2h`; `0`: off), then a timer on the host stops it: a rollback to it within the "
        "window is a link switch and an nginx reload, with no gunicorn start. Never pruned while warm.",
    )
    schema_change: Literal["copy", "in_place"] = Field(
        default="copy",
        description="How a release with new migrations reaches its database. `copy`: a new schema version, a "
        "verified copy of the current database migrated before the switch, under a write freeze (writes get "
        "503 + Retry-After from the copy to the switch; reads go on); the old database stays as it was, so "
        "rolling back is a link switch. `in_place`: `migrate` runs on the live database, no freeze and no "
        "copy (for migrations the running release tolerates); rolling back keeps the new schema.",
    )
    packages: list[PackageName] = Field(default_factory=list, description="Extra Debian packages.")
    users: list[User] = Field(default_factory=list, description="Extra system users.")
    backups: Backups | None = Field(default=None, description="Scheduled backups (off when absent).")
    rollout: Rollout | None = Field(
        default=None,
        description="Switch the web hosts a few at a time (`{canary: 1, batch: 2, watch: 30s, max_error_rate: 1%}`) "
        "instead of all at once; refused for a release that changes the schema version (two releases on one "
        "database): see the README.",
    )
    shared: list[str | SharedFolder] = Field(
        default_factory=list, validate_default=True,
        description="Persistent folders of the app on each web host, `/srv/<app>/shared/<name>` (e.g. `media`): "
        "owned and writable by the app (its only writable place besides /tmp), the same for every release, never "
        "pruned; their paths reach the app as `PINNED_SHARED_<NAME>` (and MEDIA_ROOT for `media`). A name, or "
        "`{name: data, link: data}`: each release then has a link `<project>/data` to the folder. Local to each "
        "web host: see the README for several web hosts. Removed from here: no longer writable by the app; the "
        "folder and its files stay on disk.",
    )
    scratch: list[str] = Field(
        default_factory=list, validate_default=True,
        description="Folders inside the project the app writes as scratch space, e.g. a file cache at "
        "`BASE_DIR / \"cache\"`: each release has a link there to its own folder "
        "`/var/cache/pinned-<app>/<release id>/<path>`, owned by the app, emptied at every start of the release "
        "(a switch, a rollback, a restart) and removed when it stops, so nothing one release or configuration "
        "wrote is read by another. Relative, no `..`; nothing may be committed at that path.",
    )
    env: dict[str, Annotated[str, StringConstraints(max_length=4096, pattern=ENV_VALUE)]] = Field(
        default_factory=dict,
        description="The app's plain configuration: environment variables (`NAME: value`, values as strings) the "
        "app's processes get (systemd `EnvironmentFile=` `/etc/pinned/<app>/env` on the web hosts), shown in the "
        "plan. Names: letters, digits and `_`; not pinned's own (DJANGO_SETTINGS_MODULE, SECRET_KEY, DB_*, "
        "PINNED_*...). Changing them restarts the current release.",
    )
    secrets: list[str] = Field(
        default_factory=list,
        description="Names of the app's secret environment variables: values are never in the state file (`pinned "
        "secret set NAME` stores one in the db host's secrets file); a declared secret with no value blocks the plan. "
        "Changing a value restarts the current release; a name removed here is removed from the hosts.",
    )

    previews: dict[PreviewName, Preview] = Field(
        default_factory=dict,
        description="Releases running beside `current`, each at its own address: `NAME: {release: COMMIT, port: N}` "
        "or `{release: COMMIT, host: true}` (`pinned preview add NAME REF [--port N]` writes one). Names: lowercase "
        "letters, digits and `-`, up to 16. Built like the pinned release (a release on disk is not rebuilt), "
        "health-checked, with their own units and nginx server; `current` is untouched. Removed here: stopped, "
        "their units, nginx server, database account and database go.",
    )

    @field_validator("previews", mode="before")
    @classmethod
    def _preview_names_are_text(cls, previews):
        # YAML 1.1 reads `no`, `off`, `on`, `yes` as booleans and `null` as nothing: a name to quote.
        for name in previews if isinstance(previews, dict) else ():
            if not isinstance(name, str):
                raise ValueError(f"a preview name YAML reads as {json.dumps(name)}, not as text (yes, no, on, off, "
                                 "null and numbers are read so): write the name in quotes, e.g. \"no\": {...}")
        return previews

    @field_validator("previews")
    @classmethod
    def _previews(cls, previews: dict, info) -> dict:
        site = info.data.get("site") or Site()
        seen: dict[int, str] = {}
        for name, preview in previews.items():
            if preview.promote == "keep-data" and info.data.get("schema_change") == "in_place":
                raise ValueError(f"previews.{name}.promote keep-data needs schema_change: copy (in_place migrates "
                                 "the live database: there is no new database to adopt the preview's into)")
            if preview.port is not None:
                if preview.port in (site.port, 443):
                    raise ValueError(f"previews.{name}.port {preview.port} is the site's port or 443: choose another")
                if preview.port in seen:
                    raise ValueError(f"previews.{name}.port {preview.port} is also {seen[preview.port]}'s: one each")
                seen[preview.port] = name
            elif not site.server_names or site.server_names[0].startswith("*."):
                raise ValueError(f"previews.{name}.host needs a first site.server_names entry that is a name (not "
                                 "empty, not a wildcard): the preview is <name>.<that name>; or give it a port")
        return previews
    processes: dict[str, str] = Field(
        default_factory=dict,
        description="Long-running processes of each release besides the web one (`NAME: command`, e.g. `worker: "
        "python manage.py process_queue`): units `<app>-<name>@<release>` run as the app user with its "
        "environment and the web unit's hardening, in the release's folder (a command starting with `manage.py` "
        "runs with the release's python). Started with the release before the switch (one that exits or "
        "restarts within a few seconds fails the deploy, like a failed health check); the old release's are "
        "stopped after the switch (SIGTERM, up to 30 s). Removed from here: stopped, their units removed.",
    )
    schedule: list[Schedule] = Field(
        default_factory=list,
        description="Commands run on a calendar in the current release (`{name, command, on_calendar}`): a "
        "systemd timer per entry on each web host; `current` is read when it runs, so a switch or a rollback "
        "changes no timer. `pinned status` shows each one's last run.",
    )

    @field_validator("processes")
    @classmethod
    def _processes(cls, processes: dict[str, str]) -> dict[str, str]:
        for name, command in processes.items():
            _unit_name(name, "process name")
            _command(command, f"the command of process {name}")
        return processes

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, entries: list[Schedule]) -> list[Schedule]:
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ValueError("each schedule name may be listed once")
        return entries

    @property
    def keep_warm_seconds(self) -> int:
        """keep_warm in seconds (0: off)."""
        value = self.keep_warm
        return 0 if value == "0" else int(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if "\n" in value or "\0" in value or value.startswith("-"):
            raise ValueError("repository must be a path or URL (no newlines, not starting with '-')")
        return value

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, value):
        if isinstance(value, str) and value != "sandbox":
            raise ValueError("hosts must be a mapping ({web: [www1.example.com], db: db1.example.com}) or "
                             "`sandbox`")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            error = env_name_error(name, "env")
            if error:
                raise ValueError(error)
        return env

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, names: list[str], info) -> list[str]:
        for name in names:
            error = env_name_error(name, "secret")
            if error:
                raise ValueError(error)
        if len(set(names)) != len(names):
            raise ValueError("each secret may be listed once")
        both = sorted(set(names) & set(info.data.get("env") or {}))
        if both:
            raise ValueError(f"{', '.join(both)} is both in env and in secrets: one or the other")
        return names

    @property
    def shared_names(self) -> list[str]:
        return [f if isinstance(f, str) else f.name for f in self.shared]

    @property
    def links(self) -> dict[str, str]:
        """The links each release gets, {path inside the project: shared folder name or "" for scratch}."""
        out = {f.link: f.name for f in self.shared if not isinstance(f, str) and f.link}
        out.update({path: "" for path in self.scratch})
        return out

    @field_validator("scratch")
    @classmethod
    def _scratch(cls, paths: list[str], info) -> list[str]:
        paths = [link_path(p, "scratch folder") for p in paths]
        shared = info.data.get("shared") or []
        every = sorted([f.link for f in shared if not isinstance(f, str) and f.link] + paths)
        for a, b in zip(every, every[1:]):
            if a == b or b.startswith(a + "/"):
                raise ValueError(f"links {a!r} and {b!r} overlap (shared: links and scratch: folders): each path "
                                 "once, none inside another")
        return paths

    @field_validator("shared")
    @classmethod
    def _shared(cls, folders: list[str | SharedFolder], info) -> list[str | SharedFolder]:
        names = [f if isinstance(f, str) else f.name for f in folders]
        for name in names:
            if not re.fullmatch(SHARED_NAME, name):
                raise ValueError(f"shared folder {name!r} must be one folder name: letters, digits, _ and -, no "
                                 "slash, no dots")
        if len({n.upper().replace("-", "_") for n in names}) != len(names):
            raise ValueError("each shared folder may be listed once (a-b and A_B name the same PINNED_SHARED_A_B)")
        site = info.data.get("site")
        if site and site.media_url and "media" not in names:
            raise ValueError(f"site.media_url {site.media_url} is served from the shared folder `media`: list it here")
        return folders

    @field_validator("users")
    @classmethod
    def _unique_users(cls, users: list[User]) -> list[User]:
        names = [u.name for u in users]
        if len(set(names)) != len(names):
            raise ValueError("each user may be listed once")
        if "root" in names:
            raise ValueError("root cannot be managed as an extra user")
        return users


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


# Where a field may be one of several shapes (a host: a name or a mapping), pydantic reports every shape's
# error; these say "not this shape" and are dropped when the location has another, more telling error.
SHAPE_ERRORS = {"string_type", "dict_type", "model_type", "model_attributes_type", "literal_error", "list_type"}


def _field_path(loc) -> tuple:
    """The location as the user wrote it: without pydantic's names of union members (`HostEntry`,
    `constrained-str`, `function-after[...]`, `str` of `shared:`'s name-or-mapping entries)."""
    kept: list = []
    for p in loc:
        if p == "str" and kept[:1] == ["shared"]:
            continue
        if isinstance(p, int) or re.fullmatch(r"[a-z_][a-z0-9_]*", str(p)) or (kept == ["env"] and isinstance(p, str)):
            kept.append(p)
    return tuple(kept)


def _telling(errors: list[dict]) -> list[dict]:
    paths = [_field_path(e["loc"]) for e in errors]
    kept, seen = [], set()
    for e, path in zip(errors, paths):
        shadowed = e["type"] in SHAPE_ERRORS and len(e["loc"]) != len(path) and any(
            other[:len(path)] == path and o["type"] not in SHAPE_ERRORS for o, other in zip(errors, paths))
        if not shadowed and (path, e["msg"]) not in seen:
            seen.add((path, e["msg"]))
            kept.append(e)
    return kept


def _describe(error: dict) -> str:
    parts = [str(p) if re.fullmatch(r"[A-Za-z0-9_]+", str(p)) else _short(p, 40) for p in _field_path(error["loc"])]
    where = ".".join(parts) or "(top level)"
    kind = error["type"]
    if kind == "missing":
        return f"field '{where}' is required but missing"
    if kind == "extra_forbidden":
        return f"field '{where}' is not a known field (see the README's list of state file fields)"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"field '{where}': {_short(error['input'])} is not allowed (must match {pattern})"
    message = error["msg"].removeprefix("Value error, ")
    return f"field '{where}': {message} (got {_short(error.get('input'))})"


def parse_state(text: str, source: str = "<state>") -> State:
    """Validate a state file's text; any problem raises StateFileError naming `source` and the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StateFileError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise StateFileError(f"{source}: must be a YAML mapping of fields (app, repository, release, ...)")
    try:
        return State.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in _telling(exc.errors())]
        raise StateFileError(f"{source}: " + "; ".join(lines)) from None
    except (ValueError, TypeError, RecursionError) as exc:  # odd YAML (huge ints, deep nesting)
        raise StateFileError(f"{source}: cannot be read: {exc}") from None


def state_path(env: str, base: Path | None = None) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", env):
        raise StateFileError(f"environment {env!r}: use lowercase letters, digits, _ or - (e.g. production)")
    return state_dir(base) / f"{env}.yaml"


def state_dir(base: Path | None = None) -> Path:
    """Where state files are read from: PINNED_STATE_DIR, else the current folder."""
    return Path(base or os.environ.get("PINNED_STATE_DIR") or os.getcwd())


def environments(base: Path | None = None) -> list[str]:
    """The environments whose state files are in the state folder (for error messages and init)."""
    folder = state_dir(base)
    found = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
        try:
            head = path.read_text(encoding="utf-8")[:4096]
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r"^app:", head, re.M) and re.search(r"^release:", head, re.M):
            found.append(path.stem)
    return found


def load_state(path: Path) -> State:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the state file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise StateFileError(f"{path}: the state file is not UTF-8 text (byte {exc.start})") from None
    return parse_state(text, str(path))


def data_value(argv: list[str], key: str) -> str | None:
    """The value of `--data KEY=VALUE` (or `--data=KEY=VALUE`) on pyinfra's command line, if given."""
    for i, arg in enumerate(argv):
        value = None
        if arg == "--data" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--data="):
            value = arg.split("=", 1)[1]
        if value and value.startswith(key + "="):
            return value.split("=", 1)[1]
    return None


def selected_env(argv: list[str], environ) -> str:
    """The environment of this run: `--data env=NAME` on pyinfra's command line, else PINNED_ENV, else
    the demo's. (The inventory reads it too, before pyinfra connects, to validate the state file.)"""
    given = data_value(argv, "env")
    return given if given is not None else environ.get("PINNED_ENV") or DEFAULT_ENV
