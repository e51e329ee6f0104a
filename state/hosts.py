"""The environment's servers, as the state file names them (`hosts:` and `ssh:`), and what pyinfra's
inventory makes of them (pure: no host is contacted here, and nothing imports the sandbox).

    hosts:
      web: [www1.example.com, {name: www2.example.com, ssh_user: deploy, ssh_port: 2222}]
      db: db1.example.com
    ssh: {user: deploy, sudo: true, key: ~/.ssh/deploy_ed25519, proxy_jump: bastion.example.com}

`hosts: sandbox` takes the running sandbox's hosts instead (the demo and the tests).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

# A DNS name, an IPv4 address or a bracket-less IPv6 address: what ssh and the plan may name a host by.
HostName = Annotated[str, StringConstraints(
    pattern=r"^([A-Za-z0-9][A-Za-z0-9-]{0,62}(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*\.?|[0-9a-fA-F:]{2,39})$",
    max_length=253)]
LoginName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
# [user@]host[:port], comma-separated hops: OpenSSH's ProxyJump.
JUMP = (r"^([a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9.:-]{1,253}(:[0-9]{1,5})?"
        r"(,([a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9.:-]{1,253}(:[0-9]{1,5})?)*$")
KEY_PATH = r"^[A-Za-z0-9_./~+-]{1,255}$"


class SshOptions(BaseModel):
    """How to reach the servers (each host may override these). Unset: ssh's defaults and ~/.ssh/config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: LoginName | None = Field(default=None, description="SSH login (default: ~/.ssh/config, else yours).")
    port: int | None = Field(default=None, ge=1, le=65535, description="SSH port (default 22 or ~/.ssh/config).")
    key: str | None = Field(default=None, pattern=KEY_PATH,
                            description="Private key file (`~` and paths relative to the state file work).")
    sudo: bool | None = Field(default=None, description="Run everything through passwordless sudo (a non-root "
                              "login); default: sudo when the user is set and is not root.")
    proxy_jump: str | None = Field(default=None, pattern=JUMP,
                                   description="Reach the host through this jump host (`[user@]host[:port]`), "
                                   "as OpenSSH's ProxyJump.")
    known_hosts: str | None = Field(default=None, pattern=KEY_PATH,
                                    description="known_hosts file (default ~/.ssh/known_hosts).")
    host_key_checking: Literal["yes", "accept-new", "no"] | None = Field(
        default=None, description="`yes`: the host key must be known; `accept-new`: learn new hosts' keys; "
        "`no`: do not check (disposable test hosts only).")

    @field_validator("host_key_checking", mode="before")
    @classmethod
    def _yaml_booleans(cls, value):
        # YAML reads a bare yes/no as a boolean: take it as the word the user wrote.
        return {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value


class HostEntry(BaseModel):
    """One server: its name (what ssh connects to, unless `ssh_hostname`) and any SSH option of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: HostName = Field(description="The host's name in plans and for ssh (a DNS name or an address).")
    address: HostName | None = Field(default=None, description="The address the other hosts reach it at "
                                     "(e.g. a private network); default: its name.")
    ssh_hostname: HostName | None = Field(default=None, description="Connect to this instead of the name.")
    ssh_user: LoginName | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)
    ssh_key: str | None = Field(default=None, pattern=KEY_PATH)
    sudo: bool | None = None
    proxy_jump: str | None = Field(default=None, pattern=JUMP)


Host = HostName | HostEntry


class Hosts(BaseModel):
    """The environment's servers by role: one host may be in both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    web: list[Host] = Field(min_length=1, description="Servers that run the app behind nginx.")
    db: Host = Field(description="The server with MariaDB (one).")

    @field_validator("web", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, (str, dict)) else value

    @model_validator(mode="after")
    def _consistent(self) -> Hosts:
        names = [entry(h).name for h in self.web]
        if len(set(names)) != len(names):
            raise ValueError("each web host may be listed once")
        seen: dict[str, HostEntry] = {}
        for h in [*self.web, self.db]:
            e = entry(h)
            if e.name in seen and isinstance(h, HostEntry) and isinstance(seen[e.name], HostEntry) \
                    and h != seen[e.name]:
                raise ValueError(f"{e.name} is listed twice with different options: give them once")
            if e.name not in seen or isinstance(h, HostEntry):
                seen[e.name] = e
        return self


def entry(host: Host) -> HostEntry:
    return host if isinstance(host, HostEntry) else HostEntry(name=host)


def servers(hosts: Hosts) -> dict[str, HostEntry]:
    """Each server once, by name: a host listed in both roles keeps the options given where it is a mapping."""
    found: dict[str, HostEntry] = {}
    for h in [*hosts.web, hosts.db]:
        if entry(h).name not in found or isinstance(h, HostEntry):
            found[entry(h).name] = entry(h)
    return found


class HostsError(Exception):
    """A host entry that cannot be used; the message names the field and the host."""


def _path(value: str, base: Path) -> str:
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (base / path))


def inventory_groups(hosts: Hosts, ssh: SshOptions | None, state_dir: Path,
                     ssh_config: str | None = None) -> dict[str, list[tuple[str, dict]]]:
    """pyinfra's `web` and `db` groups: (name, host data) per host. Files named (keys, known_hosts) must
    exist: a missing one is an error here, before any connection."""
    ssh = ssh or SshOptions()
    data: dict[str, dict] = {}
    for name, e in servers(hosts).items():
        d: dict = {"address": e.address or e.ssh_hostname or e.name}
        if e.ssh_hostname:
            d["ssh_hostname"] = e.ssh_hostname
        user = e.ssh_user or ssh.user
        if user:
            d["ssh_user"] = user
        port = e.ssh_port or ssh.port
        if port:
            d["ssh_port"] = port
        key = e.ssh_key or ssh.key
        if key:
            d["ssh_key"] = _path(key, state_dir)
            if not os.path.isfile(d["ssh_key"]):
                raise HostsError(f"hosts: {name}: ssh key {d['ssh_key']} does not exist (field 'ssh.key' or "
                                 "the host's 'ssh_key')")
        sudo = e.sudo if e.sudo is not None else ssh.sudo
        if sudo is None:
            sudo = bool(user) and user != "root"
        if sudo:
            d["_sudo"] = True
        if ssh.known_hosts:
            d["ssh_known_hosts_file"] = _path(ssh.known_hosts, state_dir)
            if d["ssh_known_hosts_file"] != "/dev/null" and not os.path.isfile(d["ssh_known_hosts_file"]):
                raise HostsError(f"ssh.known_hosts: {d['ssh_known_hosts_file']} does not exist")
        if ssh.host_key_checking:
            d["ssh_strict_host_key_checking"] = {"yes": "yes", "accept-new": "accept-new",
                                                 "no": "off"}[ssh.host_key_checking]
            if ssh.host_key_checking == "no" and not ssh.known_hosts:
                d["ssh_known_hosts_file"] = "/dev/null"  # nothing to check against, nothing to learn
        jump = e.proxy_jump or ssh.proxy_jump
        if jump:
            d["proxy_jump"] = jump  # for messages: the connection itself follows the ssh_config below
        if jump and ssh_config:
            d["ssh_config_file"] = ssh_config
        data[name] = d
    web_names = [entry(h).name for h in hosts.web]
    return {"web": [(n, data[n]) for n in web_names], "db": [(entry(hosts.db).name, data[entry(hosts.db).name])]}


def jump_config(hosts: Hosts, ssh: SshOptions | None, state_dir: Path, user_config: str = "") -> str | None:
    """An ssh_config for the hosts reached through a jump host (pyinfra follows ProxyJump only from an
    ssh_config file), the jump hosts' own login options, then the user's ~/.ssh/config as it is."""
    ssh = ssh or SshOptions()
    blocks, hops = [], {}
    for e in servers(hosts).values():
        jump = e.proxy_jump or ssh.proxy_jump
        if not jump:
            continue
        blocks.append(f"Host {e.ssh_hostname or e.name}\n    ProxyJump {jump}\n")
        for hop in jump.split(","):
            hops[re.sub(r"^[^@]*@|:[0-9]+$", "", hop)] = hop
    if not blocks:
        return None
    for hop in hops:
        lines = [f"Host {hop}"]
        if ssh.key:
            lines.append(f"    IdentityFile {_path(ssh.key, state_dir)}")
        if ssh.known_hosts:
            lines.append(f"    UserKnownHostsFile {_path(ssh.known_hosts, state_dir)}")
        elif ssh.host_key_checking == "no":
            lines.append("    UserKnownHostsFile /dev/null")
        if ssh.host_key_checking:
            lines.append(f"    StrictHostKeyChecking {ssh.host_key_checking}")
        if ssh.user and "@" not in hops[hop]:
            lines.append(f"    User {ssh.user}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + ("\n# ~/.ssh/config\n" + user_config if user_config else "")
