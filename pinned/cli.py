"""pinned — the daily commands around the deploy (pyinfra stays the engine: this uses its API).

    pinned plan [--json] [--detailed-exitcode]   the dry run: what a deploy would change
    pinned deploy [-y]                           run `pyinfra inventory.py deploy.py` for the environment
    pinned pin REF                               pin a commit/tag of the repository in the state file
    pinned releases [--json]                     releases on each host: schema, status, current, pinned, last
    pinned history                               switches of `current` recorded on the hosts
    pinned unlock                                release a deploy lock left by a dead run (shows the holder)

Every command takes `--env NAME` (the state file state/NAME.yaml; default: the demo's, `sandbox`).
Exit status: 0 success (plan: no changes), 2 (plan --detailed-exitcode) changes pending, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

from state.model import DEFAULT_ENV, StateFileError, parse_state

PROJECT = Path(__file__).resolve().parent.parent


class CliError(Exception):
    pass


def _connect(env: str, limit: list[str] | None = None):
    """pyinfra's inventory (inventory.py) and state, connected; the environment's run computed."""
    os.environ["PINNED_ENV"] = env
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    logging.getLogger("pyinfra").setLevel(logging.ERROR)
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all
    from pyinfra.context import ctx_config, ctx_inventory, ctx_state
    from pyinfra_cli.inventory import make_inventory

    from operations.session import compute

    sys.path.insert(0, str(PROJECT))
    state = State(check_for_changes=False)
    config = Config()
    ctx_state.set(state)
    ctx_config.set(config)
    inventory = make_inventory(str(PROJECT / "inventory.py"), cwd=str(PROJECT))
    ctx_inventory.set(inventory)
    chosen = None
    if limit:
        chosen = [h for h in inventory if h.name in limit or set(limit) & set(h.groups)]
        unknown = [name for name in limit if not any(name == h.name or name in h.groups for h in inventory)]
        if unknown:
            raise CliError(f"--limit {', '.join(unknown)}: no such host or group in inventory.py")
    state.init(inventory, config, initial_limit=chosen)
    connect_all(state)
    hosts = inventory.get_active_hosts()
    failed = [h.name for h in (chosen or inventory) if h not in hosts]
    if failed:
        raise CliError(f"cannot connect to {', '.join(failed)}: check the inventory and SSH access")
    return compute(env, hosts)


def cmd_plan(args) -> int:
    from state import render

    run = _connect(args.env, args.limit)
    if args.json:
        sys.stdout.write(render.render_json(run.plan, run.display_path))
    else:
        sys.stdout.write(render.render_text(run.plan, run.display_path, color=sys.stdout.isatty()))
    if args.detailed_exitcode and not run.plan.empty:
        return 2
    return 0


def cmd_deploy(args) -> int:
    cmd = [str(Path(sys.executable).parent / "pyinfra"), *(["-y"] if args.yes else []), "inventory.py",
           "deploy.py", "--data", f"env={args.env}", *(a for name in args.limit or () for a in ("--limit", name))]
    os.chdir(PROJECT)
    os.execv(cmd[0], cmd)
    return 1  # not reached


RELEASE_LINE = re.compile(r"^(release:[ \t]*)([\"']?)([^\s\"'#]*)\2([ \t]*(#.*)?)$", re.M)


def cmd_pin(args) -> int:
    from state.check import check_env
    from state.model import state_path
    from state.source import SourceError, release, repository_path, resolve

    env, path, state, _ = check_env(args.env)
    repo = repository_path(state, path)
    try:
        commit = resolve(repo, args.ref)
        rel = release(repo, commit, state)
    except SourceError as exc:
        raise CliError(f"{args.ref!r}: {exc}; {path} is unchanged") from None
    text = path.read_text()
    if not RELEASE_LINE.search(text):
        raise CliError(f"{path}: no top-level `release:` line to rewrite; add one (release: <commit>)")
    new = RELEASE_LINE.sub(lambda m: f"{m.group(1)}{commit}{m.group(4)}", text, count=1)
    parse_state(new, str(path))  # still a valid state file
    tmp = path.with_name(f".{path.name}.pinned-tmp")
    tmp.write_text(new)
    tmp.replace(path)
    assert state_path(env) == path
    print(f"pinned {rel.id} ({args.ref} = {commit}) in {path}")
    print(f"next: pinned plan --env {env}")
    return 0


def cmd_releases(args) -> int:
    run = _connect(args.env, args.limit)
    pinned_id = run.desired.release.id
    hosts = {}
    for spec in run.desired.web_hosts:
        o = run.observed[spec.name]
        rows = []
        for rid in sorted(o.releases):
            r = o.releases[rid]
            last = o.schemas.get(r.schema)
            rows.append({"id": rid, "schema": r.schema, "status": r.status, "commit": r.commit,
                         "built_at": r.built_at, "current": o.current == rid, "pinned": rid == pinned_id,
                         "last": bool(last and last.last == rid)})
        hosts[spec.name] = rows
    if args.json:
        print(json.dumps({"env": run.env, "pinned": pinned_id, "hosts": hosts}, indent=2))
        return 0
    for name, rows in hosts.items():
        print(f"{name}:")
        if not rows:
            print("  (no releases)")
        for r in rows:
            marks = [m for m in ("current", "pinned", "last") if r[m]]
            print(f"  {r['id']}  schema {r['schema']}  {r['status']:<7} {' '.join(marks)}")
        if pinned_id not in {r["id"] for r in rows}:
            print(f"  {pinned_id}  (pinned, not on this host yet)")
    return 0


def cmd_history(args) -> int:
    run = _connect(args.env, args.limit)
    for spec in run.desired.web_hosts:
        print(f"{spec.name}:")
        lines = run.observed[spec.name].history
        print("\n".join(f"  {line}" for line in lines) if lines else "  (no switches yet)")
    return 0


def cmd_unlock(args) -> int:
    from operations import lock

    run = _connect(args.env, args.limit)
    hosts = [h for h in run_hosts()]
    found = False
    for host in hosts:
        held = lock.show(host, run.state.app)
        if held:
            found = True
            print(f"{host.name}: released the deploy lock of {lock.describe(held)}")
            lock.force_release(host, run.state.app)
    if not found:
        print("no deploy lock is held")
    return 0


def run_hosts():
    from pyinfra import inventory

    return inventory.get_active_hosts()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pinned", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=os.environ.get("PINNED_ENV") or DEFAULT_ENV,
                        help="environment: state/ENV.yaml (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="show what a deploy would change (changes nothing)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when changes are pending")
    p = sub.add_parser("deploy", help="pyinfra inventory.py deploy.py for this environment")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser("pin", help="pin a commit or tag of the repository in the state file")
    p.add_argument("ref")
    p = sub.add_parser("releases", help="releases on each web host")
    p.add_argument("--json", action="store_true")
    sub.add_parser("history", help="switches of `current` recorded on the hosts")
    sub.add_parser("unlock", help="release a deploy lock left by a dead run (shows who held it)")
    # --env and --limit are accepted after the command too (pinned plan --env staging).
    parser.add_argument("--limit", action="append", help="only this host or group (repeatable)")
    for action in sub.choices.values():
        action.add_argument("--env", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        action.add_argument("--limit", action="append", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    commands = {"plan": cmd_plan, "deploy": cmd_deploy, "pin": cmd_pin, "releases": cmd_releases,
                "history": cmd_history, "unlock": cmd_unlock}
    try:
        return commands[args.command](args)
    except (StateFileError, CliError) as exc:
        print(f"pinned: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # inventory.py / session refusing to go on, with its own message
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        return exc.code if isinstance(exc.code, int) and exc.code else 1


if __name__ == "__main__":
    sys.exit(main())
