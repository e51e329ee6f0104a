"""Images, network and host lifecycle of the sandbox (see the package docstring)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Debian suites the sandbox builds images of, each cached on its own (base-<suite>, warm-<suite>).
SUITES = ("bookworm", "trixie")  # Debian 12, Debian 13
DEFAULT_SUITE = "trixie"
BASE_INCLUDE = (
    "systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,python3,sudo,ca-certificates,"
    "iproute2,curl,procps,less,apt-utils"
)
# The warm layer holds exactly the packages a deploy installs, so deploys to warm hosts skip apt.
# The list lives in the model (one source of truth); imported lazily so `sandbox` has no hard dependency.
TOPOLOGIES = {
    "single": [("server", ["web", "db"])],
    "multi": [("web1", ["web"]), ("web2", ["web"]), ("db", ["db"])],
}
PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,9}")  # used with fullmatch
HOST_RE = re.compile(r"[a-z][a-z0-9]{0,11}")


class SandboxError(Exception):
    """A failure with a message meant for the user."""


def log(msg: str) -> None:
    print(f"sandbox: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise SandboxError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}".rstrip()
        )
    return proc


# ---------------------------------------------------------------- configuration


def cache_dir() -> Path:
    return Path(os.environ.get("PINNED_SANDBOX_CACHE", "/var/cache/pinned-sandbox"))


def prefix() -> str:
    value = os.environ.get("PINNED_SANDBOX_PREFIX", "pinned")
    if not PREFIX_RE.fullmatch(value):
        raise SandboxError(
            f"PINNED_SANDBOX_PREFIX={value!r}: use 1-10 lowercase letters/digits starting with a letter"
        )
    return value


def state_dir(pfx: str | None = None) -> Path:
    root = Path(os.environ.get("PINNED_SANDBOX_STATE", "/var/lib/pinned-sandbox"))
    return root / (pfx or prefix())


def hosts_file(pfx: str | None = None) -> Path:
    """The machine-readable description of the running hosts (read by inventory.py)."""
    return state_dir(pfx) / "hosts.json"


def subnet_base(pfx: str) -> str:
    """Three octets of the private /24 of this prefix (PINNED_SANDBOX_SUBNET overrides, e.g. 10.77.3)."""
    override = os.environ.get("PINNED_SANDBOX_SUBNET")
    if override:
        if not re.fullmatch(r"10\.\d{1,3}\.\d{1,3}", override):
            raise SandboxError(f"PINNED_SANDBOX_SUBNET={override!r}: give three octets like 10.77.3")
        return override
    crc = zlib.crc32(pfx.encode())
    return f"10.{200 + crc % 50}.{crc // 50 % 250 + 1}"


def apt_sources() -> list[tuple[str, list[str]]]:
    """(URI, suites) pairs of this machine's Debian apt sources."""
    found: list[tuple[str, list[str]]] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in Path(path).read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "uris" in fields and fields.get("enabled", "yes") == "yes":
                found.append((fields["uris"].split()[0], fields.get("suites", "").split()))
    if Path("/etc/apt/sources.list").exists():
        for line in Path("/etc/apt/sources.list").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                uri_index = 2 if parts[1].startswith("[") else 1
                found.append((parts[uri_index], parts[uri_index + 1 : uri_index + 2]))
    return found


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise SandboxError(f"Debian suite {suite!r}: the sandbox builds {', '.join(SUITES)}")
    return suite


def mirrors(suite: str = DEFAULT_SUITE) -> tuple[str, str]:
    """The Debian mirror and security mirror, from PINNED_SANDBOX_MIRROR / _SECURITY_MIRROR or apt.

    A mirror serves every suite: the one this machine's apt uses for `suite` if it lists it, else the one
    it uses for its own suite (a Debian 12 machine lists bookworm only; its mirror serves trixie too)."""
    mirror = os.environ.get("PINNED_SANDBOX_MIRROR")
    security = os.environ.get("PINNED_SANDBOX_SECURITY_MIRROR")
    sources = apt_sources()
    if not mirror:
        for uri, suites in sources:
            if any(s in (suite, f"{suite}-updates") for s in suites):
                mirror = uri
                break
    if not mirror:
        for uri, suites in sources:
            if suites and not any(s.endswith("-security") for s in suites):
                mirror = uri
                break
    if not security:
        for uri, suites in sources:
            if any(s.endswith("-security") for s in suites):
                security = uri
                break
    if not mirror:
        raise SandboxError(
            "no Debian mirror found in /etc/apt/sources.list(.d): set PINNED_SANDBOX_MIRROR to one"
        )
    return mirror.rstrip("/"), (security or mirror.rstrip("/") + "-security").rstrip("/")


def registry_addresses() -> list[str]:
    """Addresses hosts may reach on tcp 80/443: the mirrors' (plus PINNED_SANDBOX_ALLOW)."""
    addresses: set[str] = set()
    for url in {url for suite in SUITES for url in mirrors(suite)}:
        name = re.sub(r"^[a-z]+://", "", url).split("/")[0].split(":")[0]
        try:
            for info in socket.getaddrinfo(name, None, socket.AF_INET):
                addresses.add(info[4][0])
        except socket.gaierror as exc:
            raise SandboxError(f"cannot resolve the Debian mirror {name!r}: {exc}") from exc
    addresses.update(a for a in os.environ.get("PINNED_SANDBOX_ALLOW", "").split(",") if a)
    return sorted(addresses)


def nameservers() -> list[str]:
    servers = []
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and ":" not in parts[1]:
            servers.append(parts[1])
    return servers


# ---------------------------------------------------------------- images


def base_image(suite: str = DEFAULT_SUITE) -> Path:
    return cache_dir() / f"base-{check_suite(suite)}"


def warm_layer(suite: str = DEFAULT_SUITE) -> Path:
    return cache_dir() / f"warm-{check_suite(suite)}"


@contextlib.contextmanager
def _image_lock(suite: str):
    """One build of a suite's images at a time on this machine (the cache is shared by every prefix)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / f".{suite}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def apt_sources_file(suite: str, mirror: str, security: str) -> str:
    """The image's /etc/apt/sources.list.d/debian.sources (deb822, the format Debian 13 installs)."""
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    return (f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
            f"Signed-By: {keyring}\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n"
            f"Signed-By: {keyring}\n")


def warm_packages() -> list[str]:
    from ..state.model import SYSTEM_PACKAGES

    return list(SYSTEM_PACKAGES)


def _chroot(root: Path, script: str) -> None:
    run(["chroot", str(root), "/bin/sh", "-ec", script])


def build_base(suite: str = DEFAULT_SUITE, force: bool = False) -> Path:
    """Debootstrap the suite's base image once (stamp file), configure it for booting under nspawn."""
    image = base_image(suite)
    stamp = image.with_suffix(".ready")
    if stamp.exists() and image.is_dir() and not force:
        return image
    with _image_lock(suite):
        if stamp.exists() and image.is_dir() and not force:
            return image  # another run built it while this one waited
        return _build_base(suite, image, stamp)


def _build_base(suite: str, image: Path, stamp: Path) -> Path:
    mirror, security = mirrors(suite)
    tmp = image.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(image, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the base image {image} (debootstrap, about 1-2 minutes)")
    started = time.monotonic()
    run(["debootstrap", "--variant=minbase", f"--include={BASE_INCLUDE}", suite, str(tmp), mirror])
    (tmp / "etc/apt/sources.list").unlink(missing_ok=True)
    (tmp / "etc/apt/sources.list.d/debian.sources").write_text(apt_sources_file(suite, mirror, security))
    # HTTPS egress may go through a proxy whose CA this machine trusts: the hosts need it too (pip).
    extra_cas = glob.glob("/usr/local/share/ca-certificates/*.crt")
    for ca in extra_cas:
        shutil.copy(ca, tmp / "usr/local/share/ca-certificates" / Path(ca).name)
    if extra_cas:
        _chroot(tmp, "update-ca-certificates >/dev/null")
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "getty@tty1.service",
                 "systemd-networkd-wait-online.service"):
        link = tmp / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (tmp / "etc/machine-id").write_text("")
    (tmp / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # Hosts share these host keys; the sandbox's ssh config does not check them (sandbox only).
    _chroot(tmp, "ssh-keygen -A >/dev/null; apt-get clean; rm -rf /var/lib/apt/lists/*")
    (tmp / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (tmp / "etc/ssh/sshd_config.d/pinned-sandbox.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
    )
    tmp.rename(image)
    stamp.write_text(f"built {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    log(f"base image {image.name} ready in {time.monotonic() - started:.0f} s")
    return image


def build_warm(suite: str = DEFAULT_SUITE, force: bool = False) -> Path:
    """A second layer on the base with the deploy's packages installed (speeds up all but one test)."""
    base = build_base(suite)
    layer = warm_layer(suite)
    stamp = layer.with_suffix(".ready")
    wanted = " ".join(warm_packages())

    def ready() -> bool:
        return stamp.exists() and layer.is_dir() and stamp.read_text().strip() == wanted and not force

    if ready():
        return layer
    with _image_lock(suite):
        if ready():
            return layer
        return _build_warm(base, layer, stamp, wanted)


def _build_warm(base: Path, layer: Path, stamp: Path, wanted: str) -> Path:
    log(f"building the warm layer {layer} ({wanted})")
    started = time.monotonic()
    tmp = layer.with_suffix(".tmp")
    work = layer.with_suffix(".work")
    merged = layer.with_suffix(".mnt")
    for path in (tmp, work, merged):
        _umount_quiet(path)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    shutil.rmtree(layer, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={base},upperdir={tmp},workdir={work}", str(merged)])
    try:
        # No service may start inside the build chroot.
        policy = merged / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.copy("/etc/resolv.conf", merged / "etc/resolv.conf.build")
        _chroot(merged,
                "mount -t proc proc /proc; trap 'umount /proc' EXIT; "
                "cp /etc/resolv.conf.build /etc/resolv.conf; export DEBIAN_FRONTEND=noninteractive; "
                f"apt-get update -q >/dev/null && apt-get install -y -q {wanted} >/dev/null; "
                "apt-get clean; rm -f /usr/sbin/policy-rc.d /etc/resolv.conf.build")
    finally:
        run(["umount", str(merged)], check=False)
    shutil.rmtree(work, ignore_errors=True)
    merged.rmdir()
    tmp.rename(layer)
    stamp.write_text(wanted + "\n")
    log(f"warm layer {layer.name} ready in {time.monotonic() - started:.0f} s")
    return layer


def _umount_quiet(path: Path) -> None:
    if os.path.ismount(path):
        run(["umount", "-l", str(path)], check=False)


# ---------------------------------------------------------------- hosts


@dataclass
class HostInfo:
    name: str
    address: str
    roles: list[str]
    image: str
    netns: str
    veth: str
    pid: int = 0
    machine: str = ""
    suite: str = "bookworm"  # hosts.json files written before suites were a choice hold bookworm hosts


@dataclass
class Sandbox:
    prefix: str
    subnet: str
    bridge: str
    ssh_key: str
    hosts: list[HostInfo] = field(default_factory=list)

    def save(self) -> None:
        path = hosts_file(self.prefix)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, pfx: str | None = None) -> "Sandbox | None":
        path = hosts_file(pfx)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["hosts"] = [HostInfo(**h) for h in data["hosts"]]
        return cls(**data)


def ssh_options(key: str) -> list[str]:
    return ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3"]


def _host_paths(pfx: str, name: str) -> dict[str, Path]:
    root = state_dir(pfx) / "hosts" / name
    return {"root": root, "upper": root / "upper", "work": root / "work", "merged": root / "rootfs",
            "log": root / "console.log"}


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["iptables", "-w", *args], check=check)


def _network_up(pfx: str, base: str) -> str:
    bridge = f"{pfx}br"
    if run(["ip", "link", "show", bridge], check=False).returncode != 0:
        routes = run(["ip", "-4", "route"]).stdout
        if f"{base}." in routes:
            raise SandboxError(f"subnet {base}.0/24 is already routed here: set PINNED_SANDBOX_SUBNET")
        run(["ip", "link", "add", bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{base}.1/24", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    chain = f"{pfx.upper()}-FWD"
    _iptables_down(pfx)
    _iptables("-N", chain)
    _iptables("-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
    # Hosts talk to each other on the bridge (seen here when br_netfilter makes bridged traffic pass FORWARD).
    _iptables("-A", chain, "-s", f"{base}.0/24", "-d", f"{base}.0/24", "-j", "ACCEPT")
    for ns in nameservers():
        for proto in ("udp", "tcp"):
            _iptables("-A", chain, "-s", f"{base}.0/24", "-d", ns, "-p", proto, "--dport", "53",
                      "-j", "ACCEPT")
    for address in registry_addresses():
        for port in ("80", "443"):
            _iptables("-A", chain, "-s", f"{base}.0/24", "-d", address, "-p", "tcp", "--dport", port,
                      "-j", "ACCEPT")
    # Anything else leaving the sandbox, or coming into it, is dropped.
    _iptables("-A", chain, "-s", f"{base}.0/24", "-j", "DROP")
    _iptables("-A", chain, "-d", f"{base}.0/24", "-j", "DROP")
    _iptables("-I", "FORWARD", "1", "-j", chain)
    _iptables("-t", "nat", "-A", "POSTROUTING", "-s", f"{base}.0/24", "!", "-o", bridge,
              "-j", "MASQUERADE", "-m", "comment", "--comment", chain)
    return bridge


def _iptables_down(pfx: str) -> None:
    chain = f"{pfx.upper()}-FWD"
    while _iptables("-D", "FORWARD", "-j", chain, check=False).returncode == 0:
        pass
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)
    rules = _iptables("-t", "nat", "-S", "POSTROUTING", check=False).stdout.splitlines()
    for rule in rules:
        if f'--comment {chain}' in rule or f'--comment "{chain}"' in rule:
            _iptables("-t", "nat", *rule.replace("-A POSTROUTING", "-D POSTROUTING", 1).split(),
                      check=False)


def _boot_host(sb: Sandbox, host: HostInfo, base: str) -> None:
    paths = _host_paths(sb.prefix, host.name)
    _teardown_host(sb.prefix, host)  # leftovers of a crashed run, by exact name
    for key in ("upper", "work", "merged"):
        paths[key].mkdir(parents=True, exist_ok=True)
    base_dir, warm_dir = base_image(host.suite), warm_layer(host.suite)
    lower = str(base_dir) if host.image == "base" else f"{warm_dir}:{base_dir}"
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={lower},upperdir={paths['upper']},workdir={paths['work']}", str(paths["merged"])])
    rootfs = paths["merged"]
    (rootfs / "etc/hostname").write_text(host.name + "\n")
    etc_hosts = rootfs / "etc/hosts"
    hosts_text = etc_hosts.read_text() if etc_hosts.exists() else "127.0.0.1\tlocalhost\n::1\tlocalhost\n"
    (rootfs / "etc/hosts").write_text(hosts_text + f"{host.address}\t{host.name}\n")
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(sb.ssh_key + ".pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)

    run(["ip", "netns", "add", host.netns])
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", sb.bridge, "up"])
    ns = ["ip", "netns", "exec", host.netns]
    run([*ns, "ip", "link", "set", "lo", "up"])
    run([*ns, "ip", "addr", "add", f"{host.address}/24", "dev", "eth0"])
    run([*ns, "ip", "link", "set", "eth0", "up"])
    run([*ns, "ip", "route", "add", "default", "via", f"{base}.1"])

    console = open(paths["log"], "w")
    proc = subprocess.Popen(
        ["systemd-nspawn", "--boot", f"--directory={rootfs}", f"--machine={host.machine}",
         "--register=no", "--keep-unit", f"--uuid={secrets.token_hex(16)}",
         f"--network-namespace-path=/run/netns/{host.netns}", "--console=read-only",
         "--resolv-conf=copy-host", "--timezone=off"],
        stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
    )
    host.pid = proc.pid


def _wait_ready(sb: Sandbox, host: HostInfo, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(host.pid):
            log_text = _host_paths(sb.prefix, host.name)["log"].read_text(errors="replace")[-2000:]
            raise SandboxError(f"host {host.name} stopped while booting:\n{log_text}")
        proc = run(["ssh", *ssh_options(sb.ssh_key), f"root@{host.address}",
                    "systemctl is-system-running --wait"], check=False)
        if proc.returncode != 255:
            return
        time.sleep(0.3)
    raise SandboxError(f"host {host.name} ({host.address}) did not answer over SSH in {timeout:.0f} s")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # the process may exit while we look
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _host_running(host: HostInfo) -> bool:
    """The host's nspawn process is alive (a pid of a crashed run may have been reused by another process)."""
    if not _alive(host.pid):
        return False
    try:
        cmdline = Path(f"/proc/{host.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--machine={host.machine}".encode() in cmdline


def _teardown_host(pfx: str, host: HostInfo) -> None:
    paths = _host_paths(pfx, host.name)
    pids = [host.pid] if _host_running(host) else []
    # Also any nspawn left by a crashed run with this exact machine name.
    ps = run(["pgrep", "-f", f"systemd-nspawn .*--machine={host.machine} "], check=False).stdout.split()
    pids += [int(p) for p in ps]
    for pid in set(pids):
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for pid in set(pids):
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    _umount_quiet(paths["merged"])
    if Path(f"/run/netns/{host.netns}").exists():
        run(["ip", "netns", "del", host.netns], check=False)
    run(["ip", "link", "del", host.veth], check=False)
    shutil.rmtree(paths["root"], ignore_errors=True)


# Each host's systemd (and its services) takes inotify instances of this machine's kernel: the default 128
# per user runs out at about twenty hosts ("Failed to allocate manager object: Too many open files").
INOTIFY_LIMITS = {"/proc/sys/fs/inotify/max_user_instances": 4096, "/proc/sys/fs/inotify/max_user_watches": 1048576}


def raise_inotify_limits() -> None:
    """Raise the machine's inotify limits to what many hosts need (never lowers them)."""
    for path, wanted in INOTIFY_LIMITS.items():
        try:
            with open(path) as handle:
                if int(handle.read().strip()) >= wanted:
                    continue
            with open(path, "w") as handle:
                handle.write(str(wanted))
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot raise {path} to {wanted} ({exc}): many sandbox hosts need it") from None


def up(hosts: list[tuple[str, list[str]]], image: str = "warm", suite: str = DEFAULT_SUITE) -> Sandbox:
    """Boot the named hosts (in parallel) on the suite's image; hosts already running are kept (one
    running another suite is an error). Returns the sandbox."""
    check_suite(suite)
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (network namespaces, mounts, systemd-nspawn)")
    for tool in ("debootstrap", "systemd-nspawn", "iptables", "ip", "ssh"):
        if not shutil.which(tool):
            raise SandboxError(f"{tool} is missing: apt-get install debootstrap systemd-container "
                               "iptables iproute2 openssh-client")
    pfx = prefix()
    base = subnet_base(pfx)
    raise_inotify_limits()
    build_base(suite)
    if image == "warm":
        build_warm(suite)
    sd = state_dir(pfx)
    sd.mkdir(parents=True, exist_ok=True)
    key = sd / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pinned-sandbox-{pfx}", "-f", str(key)])
    sb = Sandbox.load(pfx) or Sandbox(prefix=pfx, subnet=f"{base}.0/24", bridge="", ssh_key=str(key))
    sb.bridge = _network_up(pfx, base)
    running = {h.name: h for h in sb.hosts if _host_running(h)}
    to_boot: list[HostInfo] = []
    for name, roles in hosts:
        if not HOST_RE.fullmatch(name):
            raise SandboxError(f"host name {name!r}: use 1-12 lowercase letters/digits")
        if name in running:
            if running[name].suite != suite:
                raise SandboxError(f"host {name} is running Debian {running[name].suite}, not {suite}: "
                                   f"stop it first (python -m pinned.sandbox down {name})")
            running[name].roles = roles
            continue
        index = _host_index(sb.hosts + to_boot, name)
        to_boot.append(HostInfo(name=name, address=f"{base}.{10 + index}", roles=roles, image=image, suite=suite,
                                netns=f"{pfx}-{name}", veth=f"{pfx}v{index}", machine=f"{pfx}-{name}"))
    sb.hosts = [h for h in sb.hosts if h.name in running] + to_boot
    sb.hosts.sort(key=lambda h: h.address.split(".")[-1].zfill(3))
    sb.save()
    started = time.monotonic()
    for host in to_boot:
        _boot_host(sb, host, base)
    sb.save()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(to_boot))) as pool:
        list(pool.map(lambda h: _wait_ready(sb, h), to_boot))
    if to_boot:
        log(f"booted {', '.join(h.name for h in to_boot)} in {time.monotonic() - started:.1f} s")
    return sb


def _host_index(hosts: list[HostInfo], name: str) -> int:
    """The host's number in the subnet: kept if it had one, else the lowest free one."""
    for h in hosts:
        if h.name == name:
            return int(h.address.split(".")[-1]) - 10
    used = {int(h.address.split(".")[-1]) - 10 for h in hosts}
    index = 1
    while index in used:
        index += 1
    return index


def down(names: list[str] | None = None) -> None:
    """Stop the named hosts (all when none are named) and, with all gone, the network."""
    pfx = prefix()
    sb = Sandbox.load(pfx)
    if sb is None:
        _iptables_down(pfx)
        run(["ip", "link", "del", f"{pfx}br"], check=False)
        return
    targets = [h for h in sb.hosts if not names or h.name in names]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        list(pool.map(lambda h: _teardown_host(pfx, h), targets))
    sb.hosts = [h for h in sb.hosts if h not in targets]
    if sb.hosts:
        sb.save()
        return
    _iptables_down(pfx)
    run(["ip", "link", "del", sb.bridge or f"{pfx}br"], check=False)
    hosts_file(pfx).unlink(missing_ok=True)
    shutil.rmtree(state_dir(pfx) / "hosts", ignore_errors=True)


def status() -> list[dict]:
    sb = Sandbox.load()
    if sb is None:
        return []
    return [{"name": h.name, "address": h.address, "roles": h.roles, "image": h.image, "suite": h.suite,
             "running": _host_running(h)} for h in sb.hosts]


def inventory_groups() -> dict[str, list[tuple[str, dict]]]:
    """pyinfra's `web` and `db` groups for the running sandbox of this prefix (`hosts: sandbox`)."""
    box = Sandbox.load(prefix())
    if box is None:
        raise SandboxError(f"no sandbox hosts are running (prefix {prefix()}): run `make demo` or "
                           "`python -m pinned.sandbox up`, or name your own servers under `hosts:`")

    def group(role):
        return [(h.name, {"ssh_hostname": h.address, "address": h.address, "ssh_user": "root",
                          "ssh_key": box.ssh_key, "ssh_known_hosts_file": "/dev/null",
                          "ssh_strict_host_key_checking": "off"})
                for h in box.hosts if role in h.roles]
    return {"web": group("web"), "db": group("db")}
