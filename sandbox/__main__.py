"""python -m pinned.sandbox up|down|status|ssh|image — disposable local Debian servers (run as root)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import core


def parse_hosts(specs: list[str]) -> list[tuple[str, list[str]]]:
    hosts = []
    for spec in specs:
        name, _, roles = spec.partition("=")
        hosts.append((name, [r for r in roles.split(",") if r] or ["web", "db"]))
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinned.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="boot hosts (kept if already running) and print them")
    p_up.add_argument("--topology", choices=sorted(core.TOPOLOGIES), default="single")
    p_up.add_argument("--host", action="append", default=[], metavar="NAME=ROLE,ROLE",
                      help="boot these hosts instead of a topology (repeatable)")
    p_up.add_argument("--image", choices=["warm", "base"], default="warm",
                      help="warm: nginx/MariaDB/python3-venv preinstalled (default); base: bare Debian")
    p_up.add_argument("--suite", choices=core.SUITES, default=core.DEFAULT_SUITE,
                      help=f"the Debian suite of the hosts (default {core.DEFAULT_SUITE})")
    p_down = sub.add_parser("down", help="stop hosts (all by default) and remove what they made")
    p_down.add_argument("names", nargs="*")
    sub.add_parser("status", help="list the hosts of this prefix")
    p_ssh = sub.add_parser("ssh", help="open a shell (or run a command) on a host")
    p_ssh.add_argument("name")
    p_ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    p_image = sub.add_parser("image", help="build the cached images only (every suite unless --suite)")
    p_image.add_argument("--suite", choices=core.SUITES, action="append",
                         help="only this suite (repeatable)")
    p_image.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            hosts = parse_hosts(args.host) if args.host else core.TOPOLOGIES[args.topology]
            sb = core.up(hosts, image=args.image, suite=args.suite)
            for h in sb.hosts:
                print(f"{h.name}\t{h.address}\t{','.join(h.roles)}")
            print(f"hosts file: {core.hosts_file()}", file=sys.stderr)
        elif args.command == "down":
            core.down(args.names or None)
        elif args.command == "status":
            print(json.dumps(core.status(), indent=2))
        elif args.command == "ssh":
            sb = core.Sandbox.load()
            host = next((h for h in (sb.hosts if sb else []) if h.name == args.name), None)
            if host is None:
                raise core.SandboxError(f"no running host named {args.name!r} (see: python -m pinned.sandbox status)")
            os.execvp("ssh", ["ssh", *core.ssh_options(sb.ssh_key), "-t" if not args.cmd else "-T",
                              f"root@{host.address}", *args.cmd])
        elif args.command == "image":
            for suite in args.suite or core.SUITES:
                started = time.monotonic()
                core.build_base(suite, force=args.force)
                core.build_warm(suite, force=args.force)
                print(f"{suite}\t{core.base_image(suite)}\t{core.warm_layer(suite)}\t"
                      f"{time.monotonic() - started:.0f} s")
    except core.SandboxError as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
