"""The commands of daily work on the web hosts: `pinned manage`, `shell`, `logs`, `status`.

They reach hosts as the other `pinned` commands do (pyinfra's connected hosts; operations/connection for the
command line, sudo included). `manage` and `shell` run in a transient systemd unit (`systemd-run`) with the
units' user, environment files and hardening, in `current` (state/processes.manage_command); `logs` reads
journald on every web host at once, each line prefixed by its host. Every value reaching a shell is quoted.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import gevent
from pyinfra.api import StringCommand

from pinned.backups import size
from pinned.operations.connection import _client, command_line, run
from pinned.operations.processes import status_command
from pinned.state.desired import health_host
from pinned.state.processes import manage_command


class DailyError(Exception):
    """One line saying why (no host changed)."""


def _web_host(view, hosts, name: str | None):
    webs = [w.name for w in view.desired.web_hosts]
    chosen = name or webs[0]
    if chosen not in webs:
        raise DailyError(f"--host {chosen}: not a web host of {view.env} ({', '.join(webs)})")
    host = next((h for h in hosts if h.name == chosen), None)
    if host is None:
        raise DailyError(f"--host {chosen}: not connected (left out by --limit?)")
    if not view.observed[chosen].current:
        raise DailyError(f"{chosen}: no current release yet (deploy first)")
    return host


def stream(host, command: str, prefix: str = "") -> int:
    """Run a shell command line on a host (as root through sudo when its data says so), its output and errors
    written here as they come (each line prefixed when `prefix`); its exit status."""
    _stdin, stdout, _stderr = _client(host).exec_command(command_line(host, StringCommand(command)))
    channel = stdout.channel
    channel.shutdown_write()
    pending = {sys.stdout: b"", sys.stderr: b""}

    def write(sink, data: bytes, final: bool = False):
        if not prefix:
            sink.buffer.write(data)
        else:
            *complete, rest = (pending[sink] + data).split(b"\n")
            if final and rest:
                complete, rest = [*complete, rest], b""
            pending[sink] = rest
            sink.buffer.write(b"".join(prefix.encode() + line + b"\n" for line in complete))
        sink.flush()

    try:
        while True:
            busy = False
            if channel.recv_ready():
                write(sys.stdout, channel.recv(65536))
                busy = True
            if channel.recv_stderr_ready():
                write(sys.stderr, channel.recv_stderr(65536))
                busy = True
            if not busy:
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                gevent.sleep(0.02)
        write(sys.stdout, b"", final=True)
        write(sys.stderr, b"", final=True)
        return channel.recv_exit_status()
    finally:
        channel.close()


def manage(view, hosts, args: list[str], host_name: str | None) -> int:
    host = _web_host(view, hosts, host_name)
    return stream(host, manage_command(view.desired, args, view.desired.layout.current))


def shell(view, hosts, host_name: str | None) -> int:
    """`manage.py shell` over `ssh -t` (a terminal on the host) when this terminal is one; else its stdin is
    read as the shell's input (`echo 'print(1)' | pinned shell`)."""
    host = _web_host(view, hosts, host_name)
    interactive = sys.stdin.isatty()
    remote = command_line(host, StringCommand(manage_command(view.desired, ["shell"], view.desired.layout.current,
                                                             interactive=interactive)))
    data = host.data
    cmd = ["ssh", "-t" if interactive else "-T"]
    for flag, key in (("-p", "ssh_port"), ("-i", "ssh_key"), ("-F", "ssh_config_file")):
        if data.get(key):
            cmd += [flag, str(data.get(key))]
    if data.get("ssh_known_hosts_file"):
        cmd += ["-o", f"UserKnownHostsFile={data.get('ssh_known_hosts_file')}"]
    strict = data.get("ssh_strict_host_key_checking")
    if strict:
        cmd += ["-o", f"StrictHostKeyChecking={'no' if strict == 'off' else strict}", "-o", "LogLevel=ERROR"]
    user = data.get("ssh_user")
    target = data.get("ssh_hostname") or host.name
    cmd += ["--", f"{user}@{target}" if user else target, remote]
    return subprocess.run(cmd).returncode


def log_units(view, process: str | None, release: str) -> list[str]:
    """The journald units of the current release: web (`web`), its processes, the scheduled commands."""
    lay, state = view.desired.layout, view.state
    every = {"web": [lay.unit(release, "service")],
             **{n: [lay.process_unit(n, release)] for n in state.processes},
             **{e.name: [lay.schedule_unit(e.name, "service")] for e in state.schedule}}
    if process is None:
        return [u for units in every.values() for u in units]
    if process not in every:
        raise DailyError(f"--process {process}: not one of {', '.join(every)} (web, `processes:`, `schedule:`)")
    return every[process]


def logs(view, hosts, process: str | None, since: str | None, follow: bool, lines: int) -> int:
    by_name = {h.name: h for h in hosts}
    webs = [w.name for w in view.desired.web_hosts if w.name in by_name]
    jobs = []
    for name in webs:
        release = view.observed[name].current
        if not release:
            print(f"{name}: no current release", file=sys.stderr)
            continue
        cmd = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines)]
        for unit in log_units(view, process, release):
            cmd += ["-u", unit]
        if since:
            cmd += ["--since", since]
        if follow:
            cmd.append("-f")
        jobs.append(gevent.spawn(stream, by_name[name], " ".join(shlex.quote(c) for c in cmd), f"{name}: "))
    gevent.joinall(jobs, raise_error=True)
    return max((j.value for j in jobs), default=0)


def status(view, hosts, as_json: bool) -> int:
    lay, state = view.desired.layout, view.state
    by_name = {h.name: h for h in hosts}
    report: dict = {"env": view.env, "pinned": view.desired.release.id, "hosts": {}}

    def one(spec):
        o = view.observed[spec.name]
        release = o.current
        units = []
        if release:
            units = [lay.unit(release, "socket"), lay.unit(release, "service"),
                     *(lay.process_unit(n, release) for n in sorted(state.processes))]
        timers = {lay.schedule_unit(e.name): lay.schedule_unit(e.name, "service") for e in state.schedule}
        request = {"root": lay.root, "units": units, "timers": timers,
                   "socket": lay.socket(release) if release else "", "host": health_host(view.desired, spec),
                   "health_url": state.site.health_url}
        ok, out = run(by_name[spec.name], status_command(json.dumps(request)))
        if not ok:
            raise DailyError(f"{spec.name}: status failed: {(out.stderr or '').strip()[-300:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
        data["current"] = release
        data["warm"] = {rid: o.timers.get(lay.warm_timer(rid)) for rid in sorted(o.releases)
                        if rid != release and o.unit_active(lay.warm_timer(rid))
                        and o.unit_active(lay.unit(rid, "service"))}
        data["certificate"] = certificate_status(view.desired, o)
        return spec.name, data

    jobs = [gevent.spawn(one, w) for w in view.desired.web_hosts if w.name in by_name]
    gevent.joinall(jobs, raise_error=True)
    report["hosts"] = dict(j.value for j in jobs)
    db = view.observed[view.desired.db_host.name]
    report["databases"] = {name: (tuple(db.db_stats.get(name, ())) + (0, 0, 0))[2] for name in sorted(db.databases)}
    from pinned.cli import preview_rows

    report["previews"] = preview_rows(view)
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    for name, h in report["hosts"].items():
        print(f"{name}: current {h['current'] or '(none)'}" + (f"  health {state.site.health_url}: {h['health']}"
                                                                  if h.get("health") else ""))
        for unit, u in h["units"].items():
            restarts = f", {u.get('NRestarts')} restarts" if u.get("NRestarts") not in (None, "", "0") else ""
            since = u.get("ActiveEnterTimestamp") or "-"
            print(f"  {unit:<52} {u.get('ActiveState')}/{u.get('SubState')} since {since}{restarts}")
        for timer, t in h["timers"].items():
            last = t["last"] or "never"
            result = f"{t['result']} (exit {t['status']})" if t["last"] else "-"
            print(f"  {timer:<52} {t['active']}; last run {last}: {result}; next {t['next'] or '-'}")
        for rid, until in h["warm"].items():
            print(f"  warm: {rid} (kept running for an instant rollback" + (f", until {until})" if until else ")"))
        cert = h["certificate"]
        if cert:
            print("  certificate: " + (f"{cert['subject']} ({', '.join(cert['names'])}), issued by {cert['issuer']}, "
                                       f"expires {cert['not_after']} (in {cert['days_left']} days)"
                                       if cert.get("subject") else cert["state"]))
        disk = ", ".join(f"{k} {size(h['disk'][k])}" for k in ("versions", "venvs", "shared")
                         if h["disk"].get(k) is not None)
        print(f"  disk: {disk}")
    print(f"{view.desired.db_host.name}: databases " + (", ".join(f"{n} {size(b)}" for n, b in
                                                                   report["databases"].items()) or "(none)"))
    for name, p in report["previews"].items():
        print(f"preview {name}: release {p['release']}, database {p['database']}")
        for host, where in p["hosts"].items():
            print(f"  {host}: {where['url']} ({'running' if where['running'] else 'not running'})")
    return 0


def certificate_status(d, o) -> dict | None:
    """The certificate the host serves (site.tls): subject, names, issuer, expiry and days left by the host's
    clock; None without HTTPS."""
    from pinned.state.plan_tls import _days

    tls, lay = d.state.site.tls, d.layout
    if tls is None:
        return None
    info = o.certificates.get(lay.acme_certificate if tls.acme else lay.tls_certificate)
    if not info or "invalid" in info:
        return {"state": "none on the host yet (the next deploy " + ("asks the ACME CA for it)" if tls.acme else
                                                                      "uploads it)")}
    return {"subject": info.get("subject", ""), "names": list(info.get("names") or ()),
            "issuer": info.get("issuer", ""), "not_after": info.get("not_after", ""), "days_left": _days(info, o.now)}
