"""Desired state: what each host should have, rendered from the state file (pure: no host involved)."""

from __future__ import annotations

import hashlib
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from .layout import MARIADB_NETWORK_CONF, MARIADB_SOCKET, SETTINGS_MODULE, Layout
from .model import DATABASE_COLLATION, SYSTEM_PACKAGES, State
from .tls import LocalAcme, LocalTls

# Which role needs which of the system packages.
ROLE_PACKAGES = tuple((p, "db" if p.startswith("mariadb") else "web") for p in SYSTEM_PACKAGES)
from .source import Release

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


@dataclass(frozen=True)
class HostSpec:
    """A host of the inventory: its name, the address others reach it at, its roles (web, db)."""

    name: str
    address: str
    roles: tuple[str, ...] = ("web", "db")


@dataclass(frozen=True)
class ManagedFile:
    path: str
    content: str
    label: str
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    reload: str = ""  # what reads it, reloaded when it changes: systemd, nginx, mariadb


@dataclass(frozen=True)
class Desired:
    """The environment as the state file wants it: the state, the pinned release, the hosts."""

    env: str
    state: State
    release: Release
    hosts: tuple[HostSpec, ...]
    state_file: str = ""
    by: str = ""  # who deploys (user@machine): recorded in the history by the switch
    # Bytes to send for the release: whole ("") or, per web host (its name), as a delta from the release it
    # serves (source.transfer_sizes, pinned/engine.py base_files)
    transfers: dict = field(default_factory=dict, compare=False)
    # site.tls's local files as state.check found them (the uploaded certificate, an ACME CA bundle)
    tls: LocalTls | None = None
    acme: LocalAcme | None = None
    previews: dict = field(default_factory=dict)  # preview name → its Release (state/previews.py)

    @property
    def layout(self) -> Layout:
        return Layout(self.state.app)

    @property
    def web_hosts(self) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if "web" in h.roles)

    @property
    def db_host(self) -> HostSpec:
        dbs = [h for h in self.hosts if "db" in h.roles]
        return dbs[0]

    def packages(self, host: HostSpec | None = None) -> tuple[str, ...]:
        """Debian packages of a host by its roles (all of them when no host is given)."""
        roles = host.roles if host else ("web", "db")
        wanted = [p for p, role in ROLE_PACKAGES if role in roles]
        if "web" in roles and self.state.site.tls and self.state.site.tls.acme:
            wanted.append("certbot")
        return (*wanted, *[p for p in self.state.packages if p not in wanted])


def env_quote(value: str) -> str:
    """A value as systemd's EnvironmentFile= reads it back exactly: in double quotes, with `\\`, `"`, `$` and
    `` ` `` escaped by a backslash (systemd unescapes exactly those; pinned's settings module does the same).
    The state file's and `pinned secret set`'s checks keep newlines and other control characters out."""
    return '"' + "".join("\\" + ch if ch in '\\"$`' else ch for ch in value) + '"'


def env_fingerprint(name: str, value: str) -> str:
    """A plain `env:` value's fingerprint, as recorded in the loaded record (the value itself is in the plan)."""
    return hashlib.sha256(f"{name}={value}".encode()).hexdigest()[:12]


def pinned_env(desired: Desired) -> dict[str, str]:
    """pinned's own variables of the env file: the shared folders' paths, the media's, the server names (read by
    pinned's settings module at run time, so any release built by this version serves the folders and answers
    the names declared now: a change restarts the current release, it needs no new one)."""
    s, lay = desired.state, desired.layout
    out = {f"PINNED_SHARED_{name.upper().replace('-', '_')}": lay.shared(name) for name in s.shared_names}
    out["PINNED_SERVER_NAMES"] = " ".join(s.site.server_names)  # ALLOWED_HOSTS (none: the host's address)
    if "media" in s.shared_names:
        out["PINNED_MEDIA_ROOT"] = lay.shared("media")
        out["PINNED_MEDIA_URL"] = s.site.media_url or "/media/"
    if s.site.tls:  # read by pinned's settings module: secure cookies, the proxy's header, CSRF origins
        port = "" if s.site.tls.port == 443 else f":{s.site.tls.port}"
        out["PINNED_HTTPS"] = "1"
        out["PINNED_CSRF_TRUSTED_ORIGINS"] = " ".join(f"https://{name}{port}" for name in s.site.server_names)
    return out


def release_links(desired: Desired) -> tuple[tuple[str, str], ...]:
    """The links the release gets inside its project: (path, target), sorted by path. A `scratch:` folder's
    target is the release's own folder under /var/cache/pinned-<app>/<release id>/, which its unit empties at
    each start and removes when it stops."""
    lay, rid = desired.layout, desired.release.id
    return tuple(sorted((path, lay.shared(name) if name else lay.scratch(rid, path))
                        for path, name in desired.state.links.items()))


def env_values(desired: Desired) -> dict[str, str]:
    """Everything the env file holds: the state file's `env:` and pinned's own."""
    return {**desired.state.env, **pinned_env(desired)}


def env_file(desired: Desired) -> ManagedFile:
    """/etc/pinned/<app>/env on a web host: the state file's `env:` and pinned's own (plain values, shown with
    a diff)."""
    s = desired.state
    lines = "".join(f"{name}={env_quote(value)}\n" for name, value in sorted(env_values(desired).items()))
    content = (f"# Managed by pinned ({s.app}): the app's `env:` from the state file (EnvironmentFile= of its "
               f"units).\n{lines}")
    return ManagedFile(desired.layout.env_file, content, "the app's env", mode="0640", group=s.app)


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)


def tls_paths(desired: Desired) -> tuple[str, str] | None:
    """The certificate and key nginx serves (site.tls), or None without HTTPS."""
    tls, lay = desired.state.site.tls, desired.layout
    if tls is None:
        return None
    return (lay.acme_certificate, lay.acme_key) if tls.acme else (lay.tls_certificate, lay.tls_key)


def nginx_site(desired: Desired, with_certificate: bool = True) -> ManagedFile:
    """The nginx site. With HTTPS: port 80 redirects (but the ACME challenge), the site is on the TLS port.
    `with_certificate=False`: the site before its ACME certificate exists (plain HTTP, the challenge served)."""
    s, lay = desired.state, desired.layout
    tls = s.site.tls
    paths = tls_paths(desired) if with_certificate else None
    https = None
    if tls and paths:
        https = {"port": tls.port, "certificate": paths[0], "key": paths[1], "hsts": tls.hsts,
                 "redirect_port": "" if tls.port == 443 else f":{tls.port}"}
    return ManagedFile(
        lay.nginx_site,
        render("nginx-site.conf.j2", app=s.app, root=lay.root, upstream_path=lay.nginx_upstream,
               upstream=lay.upstream_name, port=s.site.port, server_names=s.site.server_names,
               static_url=s.site.static_url, media_url=s.site.media_url, media_root=lay.shared("media"),
               max_body=s.site.max_body, freeze_path=lay.nginx_freeze, frozen_page=lay.frozen_page, https=https,
               acme_webroot=lay.acme_webroot if tls and tls.acme else "", access_log=lay.access_log),
        "nginx site" if with_certificate else "nginx site (before its certificate: plain HTTP, ACME challenge)",
        reload="nginx",
    )


def site_files(desired: Desired) -> tuple[ManagedFile, ...]:
    """Config files of a web host, other than the upstream (which follows `current`)."""
    s, lay = desired.state, desired.layout
    common = {"app": s.app, "root": lay.root, "run_dir": lay.run_dir}
    return (
        ManagedFile(lay.socket_template, render("app.socket.j2", **common), "systemd socket template",
                    reload="systemd"),
        ManagedFile(
            lay.service_template,
            render("app.service.j2", **common, settings_module=SETTINGS_MODULE, workers=s.site.workers,
                   wsgi=s.django.wsgi_app, env_file=lay.env_file, secrets=lay.secrets,
                   writable=[lay.shared(n) for n in s.shared_names],
                   scratch_root=lay.scratch_root, scratch=sorted(s.scratch)),
            "systemd service template", reload="systemd",
        ),
        ManagedFile(lay.nginx_freeze, freeze_conf(desired, refusing=False), "nginx write freeze (off)",
                    reload="nginx"),
        ManagedFile(lay.frozen_page, frozen_page(desired), "page of a refused write", reload="nginx"),
        nginx_site(desired),
        *warm_files(desired),
    )


# What a schema change's copy costs, for the plan's estimate of the write freeze: measured on the sandbox
# host (shared/notes/measured-facts.md: 18.5 MB copied in 1.7–2.1 s), plus migrate, health check, switch.
COPY_BYTES_PER_SECOND = 9_000_000
FREEZE_FIXED_SECONDS = 3.0


def freeze_estimate(database_bytes: int) -> float:
    return FREEZE_FIXED_SECONDS + database_bytes / COPY_BYTES_PER_SECOND


def freeze_conf(desired: Desired, refusing: bool, seconds: float = 10.0) -> str:
    """The site's write-freeze include: refusing writes (during a schema change), or not."""
    retry_after = min(120, max(5, math.ceil(seconds)))
    head = f"# Managed by pinned ({desired.state.app}): the write freeze of a schema change.\n"
    if not refusing:
        return head + "# Off: writes go through.\nset $pinned_retry_after 10;\n"
    return (head + "# On: the database is being copied and migrated; writes are refused until the switch.\n"
            f"set $pinned_retry_after {retry_after};\n"
            "if ($request_method !~ ^(GET|HEAD|OPTIONS)$) { return 503; }\n")


def frozen_page(desired: Desired) -> str:
    message = html.escape(desired.state.site.frozen_message)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Updating</title></head>\n"
            f"<body><p>{message}</p></body></html>\n")


def user_files(desired: Desired) -> tuple[ManagedFile, ...]:
    return tuple(
        ManagedFile(Layout.sudoers(u.name), f"# Managed by pinned\n{u.name} ALL=(ALL) NOPASSWD:ALL\n",
                    f"sudo rule of {u.name}", mode="0440")
        for u in desired.state.users if u.sudo
    )


def upstream_file(desired: Desired, release_id: str) -> ManagedFile:
    lay = desired.layout
    return ManagedFile(
        lay.nginx_upstream,
        render("nginx-upstream.conf.j2", app=desired.state.app, upstream=lay.upstream_name,
               socket=lay.socket(release_id)),
        "nginx upstream",
    )


def allowed_hosts(desired: Desired, host: HostSpec) -> list[str]:
    names = list(desired.state.site.server_names)
    return names or [host.address, "localhost"]


def health_host(desired: Desired, host: HostSpec) -> str:
    return allowed_hosts(desired, host)[0]


def settings_module(desired: Desired, host: HostSpec, schema: int, release_dir: str) -> str:
    s, lay = desired.state, desired.layout
    db = desired.db_host
    return render(
        "settings.py.j2",
        release_id=desired.release.id, schema=schema, settings=s.django.settings,
        secrets_path=lay.secrets, env_path=lay.env_file, allowed_hosts=allowed_hosts(desired, host),
        host_fallback=[host.address, "localhost"],
        static_url=s.site.static_url, collation=DATABASE_COLLATION,
        database=lay.database(schema), db_user=s.app,
        db_host=MARIADB_SOCKET if db.name == host.name else db.address,
        freeze_marker=lay.freeze_marker, frozen_message=s.site.frozen_message,
    )


def runtime_module() -> str:
    """pinned_runtime.py: uploaded into every release beside the settings module (its middleware)."""
    return (TEMPLATES / "pinned_runtime.py").read_text()


def db_user_host(desired: Desired, web: HostSpec) -> str:
    """The host part of the app's database account for a web host."""
    return "localhost" if web.name == desired.db_host.name else web.address


def mariadb_network_file(desired: Desired) -> ManagedFile:
    """MariaDB listens on the db host's address when web hosts elsewhere use it (local socket stays)."""
    return ManagedFile(
        MARIADB_NETWORK_CONF,
        "# Managed by pinned: web hosts reach MariaDB on this address (accounts exist for their addresses only).\n"
        f"[mysqld]\nbind-address = {desired.db_host.address}\n",
        "MariaDB network", reload="mariadb",
    )


def schema_info(desired: Desired, schema: int, copied_from: int | None) -> str:
    rel = desired.release
    return json.dumps({
        "schema": schema, "database": desired.layout.database(schema), "fingerprint": rel.fingerprint,
        "migrations": list(rel.migrations), "copied_from": copied_from, "migrated": True,
    }, sort_keys=True)


def release_metadata(desired: Desired, schema: int) -> str:
    rel = desired.release
    return json.dumps({
        "id": rel.id, "commit": rel.commit, "schema": schema, "fingerprint": rel.fingerprint,
        "requirements_hash": rel.requirements_hash, "status": "ready",
    }, sort_keys=True)


from .warm import warm_files  # noqa: E402 (state/warm.py builds on this module's ManagedFile and render)
