"""The state file: the desired state of one environment, validated by pydantic.

Every value here may end up in a shell command, a SQL statement, a unit file or an nginx config, so
each field is restricted to what it can sanely hold; the operations still quote everything.
"""

from __future__ import annotations

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


    @model_validator(mode="after")
    def _media_url(self):
        if self.media_url and self.media_url == self.static_url:
            raise ValueError("media_url must differ from static_url")
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
        return None
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
        "`Mon..Fri 12:00`; checked with `systemd-analyze calendar`.",
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
    shared: list[str] = Field(
        default_factory=list, validate_default=True,
        description="Persistent folders of the app on each web host, `/srv/<app>/shared/<name>` (e.g. `media`): "
        "owned and writable by the app (its only writable place besides /tmp), the same for every release, never "
        "pruned; their paths reach the app as `PINNED_SHARED_<NAME>` (and MEDIA_ROOT for `media`). Local to each "
        "web host: see the README for several web hosts. Removed from here: no longer writable by the app; the "
        "folder and its files stay on disk.",
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

    @field_validator("shared")
    @classmethod
    def _shared(cls, names: list[str], info) -> list[str]:
        for name in names:
            if not re.fullmatch(SHARED_NAME, name):
                raise ValueError(f"shared folder {name!r} must be one folder name: letters, digits, _ and -, no "
                                 "slash, no dots")
        if len({n.upper().replace("-", "_") for n in names}) != len(names):
            raise ValueError("each shared folder may be listed once (a-b and A_B name the same PINNED_SHARED_A_B)")
        site = info.data.get("site")
        if site and site.media_url and "media" not in names:
            raise ValueError(f"site.media_url {site.media_url} is served from the shared folder `media`: list it here")
        return names

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
    `constrained-str`, `function-after[...]`)."""
    kept: list = []
    for p in loc:
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


def selected_env(argv: list[str], environ) -> str:
    """The environment of this run: `--data env=NAME` on pyinfra's command line, else PINNED_ENV, else
    the demo's. (The inventory reads it too, before pyinfra connects, to validate the state file.)"""
    for i, arg in enumerate(argv):
        value = None
        if arg == "--data" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--data="):
            value = arg.split("=", 1)[1]
        if value and value.startswith("env="):
            return value.split("=", 1)[1]
    return environ.get("PINNED_ENV") or DEFAULT_ENV
