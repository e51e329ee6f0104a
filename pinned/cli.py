"""pinned — the daily commands around the deploy (pyinfra stays the engine: this uses its API).

    pinned plan [--json] [--detailed-exitcode]   the dry run: what a deploy would change
    pinned plan --out FILE                       the same, also saved with what it was computed from
    pinned apply FILE                            run exactly that saved plan, or nothing if anything moved
    pinned deploy [-y]                           run `pyinfra inventory.py deploy.py` for the environment
    pinned pin REF                               pin a commit/tag of the repository in the state file
    pinned releases [--json]                     releases on each host: schema, status, current, pinned, last, warm;
                                                 the previews with their URLs
    pinned preview add NAME REF [--port N | --host] [--write] [--keep-data]
                                                 run REF beside current at its own address (state file's previews:)
    pinned preview remove NAME                   take a preview out of the state file (the deploy removes it)
    pinned history                               switches of `current` recorded on the hosts
    pinned unlock                                end the deploy lock of a hung run (shows the holder)
    pinned databases [--json]                    the schema versions' databases: size, last use
    pinned drop-database NAME                    drop one (never the current or the pinned schema's), backed up first
    pinned backup [--download DIR]               back up the current schema's database on the db host (and the
                                                 web hosts' shared folders, with `shared:`)
    pinned backups [--json]                      the backups on the db host (and the web hosts'): id, size, time
    pinned restore ID                            restore a backup of the current schema's database, or of a web
                                                 host's shared folders (backed up first)
    pinned secret set NAME [--from-file F]       store a declared secret on the db host (the value from stdin)
    pinned secret list [--json]                  the secrets' names and short fingerprints (never values)
    pinned secret unset NAME                     remove a secret and its value from the db host
    pinned manage [--host H] -- CMD ARGS…        a management command in the current release (its exit status)
    pinned shell [--host H]                      manage.py shell in the current release
    pinned logs [-f] [--process NAME] [--since WHEN]   the current release's logs, every web host, by host
    pinned status [--json]                       per web host: current release, units, timers, disk use

    pinned init [--host NAME | --web NAME... --db NAME] [--ssh-user U] [--ssh-key F]
                                                 write ENV.yaml (default production) from this Django project
    pinned schema                                the state file's JSON Schema, for editors

Every command takes `--env NAME`: the state file NAME.yaml in the current folder (or PINNED_STATE_DIR);
default: PINNED_ENV, else the demo's, `sandbox`.
Exit status: 0 success (plan: no changes), 2 (plan --detailed-exitcode) changes pending, 1 error or a
blocked plan (the hosts cannot converge; the plan says why).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

from pinned import CONFIG, DEPLOY, INVENTORY
from pinned.state.model import DEFAULT_ENV, StateFileError, parse_state


class CliError(Exception):
    pass


def _connect(env: str, limit: list[str] | None = None):
    """pyinfra's inventory (inventory.py) and state, connected: the active hosts."""
    os.environ["PINNED_ENV"] = env
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    logging.getLogger("pyinfra").setLevel(logging.ERROR)
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.context import ctx_config, ctx_inventory, ctx_state
    from pyinfra_cli.inventory import make_inventory

    from pinned.connect import ERRORS

    state = State(check_for_changes=False)
    config = Config()
    ctx_state.set(state)
    ctx_config.set(config)
    inventory = make_inventory(str(INVENTORY), cwd=os.getcwd())
    ctx_inventory.set(inventory)
    chosen = None
    if limit:
        chosen = [h for h in inventory if h.name in limit or set(limit) & set(h.groups)]
        unknown = [name for name in limit if not any(name == h.name or name in h.groups for h in inventory)]
        if unknown:
            raise CliError(f"--limit {', '.join(unknown)}: no such host or group in inventory.py")
    state.init(inventory, config, initial_limit=chosen)
    try:
        connect_all(state)
    except PyinfraError:
        if not ERRORS.failed:
            raise
    if ERRORS.failed:  # inventory.py watches: one line per host that cannot be reached, printed already
        sys.exit(1)
    hosts = inventory.get_active_hosts()
    failed = [h.name for h in (chosen or inventory) if h not in hosts]
    if failed:
        raise CliError(f"cannot connect to {', '.join(failed)}: check the inventory and SSH access")
    return hosts


def cmd_plan(args) -> int:
    from pinned.engine import compute
    from pinned.state import render
    from pinned.state.plan import BLOCKED

    hosts = _connect(args.env, args.limit)
    run = compute(args.env, hosts)
    if args.out:
        if run.plan.status == BLOCKED:
            sys.stdout.write(render.render_text(run.plan, run.display_path, color=sys.stdout.isatty()))
            raise CliError(f"the plan is blocked: nothing saved to {args.out}")
        from pinned import saved_plan
        from pinned.engine import deployed_by

        saved_plan.write(args.out, saved_plan.make(run, render.plan_json(run.plan, run.display_path),
                                                   [h.name for h in hosts], deployed_by()))
    if args.json:
        sys.stdout.write(render.render_json(run.plan, run.display_path))
    else:
        sys.stdout.write(render.render_text(run.plan, run.display_path, color=sys.stdout.isatty()))
    if run.plan.status == BLOCKED:
        return 1
    if args.out and not args.json:
        print(f"\nSaved this plan to {args.out}. Apply exactly it, or nothing if the hosts, {run.display_path} or "
              f"the pinned commit change meanwhile: pinned apply {args.out}")
    if args.detailed_exitcode and not run.plan.empty:
        return 2
    return 0


def _inspect(args):
    from pinned.engine import inspect

    return inspect(args.env, _connect(args.env, args.limit))


def cmd_deploy(args) -> int:
    # From the current folder (where the state files are), with the package's inventory, deploy and config.
    cmd = [str(Path(sys.executable).parent / "pyinfra"), *(["-y"] if args.yes else []), "--config", str(CONFIG),
           str(INVENTORY), str(DEPLOY), "--data", f"env={args.env}",
           *(a for name in args.limit or () for a in ("--limit", name))]
    os.execv(cmd[0], cmd)
    return 1  # not reached


def cmd_apply(args) -> int:
    """pyinfra with the saved plan's environment and hosts, and `--data plan=FILE`: the engine plans again
    and goes on only if nothing moved (pinned/saved_plan.py). No confirmation: the plan was reviewed."""
    from pinned import saved_plan

    try:
        document = saved_plan.load(args.file)
    except saved_plan.SavedPlanError as exc:
        raise CliError(str(exc)) from None
    given = sys.argv[1:]
    if any(a == "--env" or a.startswith("--env=") for a in given) and args.env != document["env"]:
        raise CliError(f"{args.file} is a plan of environment {document['env']!r}, not {args.env!r}")
    cmd = [str(Path(sys.executable).parent / "pyinfra"), "-y", "--config", str(CONFIG), str(INVENTORY), str(DEPLOY),
           "--data", f"env={document['env']}", "--data", f"plan={Path(args.file).resolve()}",
           *(a for name in sorted(document["hosts"]) for a in ("--limit", name))]
    os.execv(cmd[0], cmd)
    return 1  # not reached


RELEASE_LINE = re.compile(r"^(release:[ \t]*)([\"']?)([^\s\"'#]*)\2([ \t]*(#.*)?)$", re.M)


def cmd_pin(args) -> int:
    from pinned.state.check import check_env
    from pinned.state.source import SourceError, release, resolve

    checked = check_env(args.env)
    env, path, state, repo = checked.env, checked.path, checked.state, checked.repo
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
    print(f"pinned {rel.id} ({args.ref} = {commit}) in {path}")
    print(f"next: pinned plan --env {env}")
    return 0


def cmd_releases(args) -> int:
    run = _inspect(args)
    pinned_id = run.desired.release.id
    hosts = {}
    for spec in run.desired.web_hosts:
        o = run.observed[spec.name]
        rows = []
        for rid in sorted(o.releases):
            r = o.releases[rid]
            last = o.schemas.get(r.schema)
            timer = run.desired.layout.warm_timer(rid)
            warm = o.unit_active(timer) and o.unit_active(run.desired.layout.unit(rid, "service"))
            rows.append({"id": rid, "schema": r.schema, "status": r.status, "commit": r.commit,
                         "built_at": r.built_at, "current": o.current == rid, "pinned": rid == pinned_id,
                         "last": bool(last and last.last == rid), "warm": warm,
                         "warm_until": o.timers.get(timer) if warm else None})
        hosts[spec.name] = rows
    previews = preview_rows(run)
    if args.json:
        print(json.dumps({"env": run.env, "pinned": pinned_id, "hosts": hosts, "previews": previews}, indent=2))
        return 0
    for name, rows in hosts.items():
        print(f"{name}:")
        if not rows:
            print("  (no releases)")
        for r in rows:
            marks = [m for m in ("current", "pinned", "last") if r[m]]
            if r["warm"]:  # kept running after a switch: a rollback to it starts nothing
                marks.append(f"warm (until {r['warm_until']})" if r["warm_until"] else "warm")
            print(f"  {r['id']}  schema {r['schema']}  {r['status']:<7} {' '.join(marks)}")
        if pinned_id not in {r["id"] for r in rows}:
            print(f"  {pinned_id}  (pinned, not on this host yet)")
    if previews:
        print("previews:")
    for name, p in previews.items():
        for host, h in p["hosts"].items():
            state = "running" if h["running"] else "not running (deploy to start it)"
            print(f"  {name}  {p['release']}  {h['url']}  on {host}: {state}; database: {p['database']}")
    return 0


def cmd_preview(args) -> int:
    from pinned import preview_edit
    from pinned.state.check import check_env
    from pinned.state.source import SourceError, release, resolve

    checked = check_env(args.env)
    path, text = checked.path, checked.path.read_text()
    if args.action == "add":
        if (args.port is None) == (not args.host):
            raise CliError("preview add: give its address, --port N or --host (<name>.<server name>)")
        try:
            commit = resolve(checked.repo, args.ref)
            rel = release(checked.repo, commit, checked.state)
        except SourceError as exc:
            raise CliError(f"{args.ref!r}: {exc}; {path} is unchanged") from None
        entry = {"release": commit, "port": args.port, "host": args.host, "database": "write" if args.write else "read",
                 "promote": "keep-data" if args.keep_data else "fresh-copy"}
        edit = lambda: preview_edit.add(text, args.name, entry)  # noqa: E731
        said = f"preview {args.name}: release {rel.id} ({args.ref} = {commit})"
        releases = {**checked.previews, args.name: rel}
    else:
        if args.name not in checked.state.previews:
            names = ", ".join(checked.state.previews) or "none"
            raise CliError(f"{path}: no preview {args.name!r} (previews: {names})")
        edit = lambda: preview_edit.remove(text, args.name)  # noqa: E731
        said = f"preview {args.name} removed (the next deploy stops it and removes its units, server and database)"
    try:
        new = edit()
    except preview_edit.EditError as exc:
        raise CliError(f"{path}: {exc}; it is unchanged") from None
    try:
        state = parse_state(new, str(path))
    except StateFileError as exc:
        raise CliError(f"{exc}; {path} is unchanged") from None
    if args.action == "add":
        from pinned.state.previews import keep_data_refusal
        refused = keep_data_refusal(state, checked.release, releases)
        if refused:
            raise CliError(f"{path}: {refused}; it is unchanged")
    tmp = path.with_name(f".{path.name}.pinned-tmp")
    tmp.write_text(new)
    tmp.replace(path)
    print(f"{said} in {path}")
    print(f"next: pinned plan --env {checked.env}")
    return 0


def preview_rows(run) -> dict:
    """Each preview: its release, URL per web host, database use, and whether it runs there."""
    from pinned.state import previews as pv

    d, app = run.desired, run.desired.state.app
    out = {}
    for name, p in d.state.previews.items():
        rel = d.previews[name]
        own = rel.fingerprint != d.release.fingerprint
        out[name] = {
            "release": rel.id, "commit": rel.commit,
            "database": f"{pv.db_name(app, name)} (its own copy; promote: {p.promote})" if own
            else f"current ({p.database})",
            "hosts": {w.name: {"url": pv.address(d, name, w), "running": run.observed[w.name].previews.get(
                "units", {}).get(pv.unit(app, name, "service"), {}).get("active") == "active"}
                      for w in d.web_hosts}}
    return out


def cmd_history(args) -> int:
    run = _inspect(args)
    for spec in run.desired.web_hosts:
        print(f"{spec.name}:")
        lines = run.observed[spec.name].history
        print("\n".join(f"  {line}" for line in lines) if lines else "  (no switches yet)")
    return 0


def cmd_unlock(args) -> int:
    from pinned import lock
    from pinned.state.check import check_env
    from pinned.state.layout import Layout

    path = Layout(check_env(args.env).state.app).lock
    found = False
    for host in _connect(args.env, args.limit):
        try:
            held, done = lock.unlock(host, path)
        except lock.LockError as exc:
            raise CliError(str(exc)) from None
        if held is None:
            continue
        found = True
        how = {"ended": "ended its holder process", "killed": "killed its holder process (it did not end on "
               "SIGTERM)"}.get(done.split(" ", 1)[0], "its holder was gone")
        pid = done.split(" ", 1)[1] if " " in done else ""
        print(f"{host.name}: released the deploy lock of {lock.describe(held)}: {how}{f' {pid}' if pid else ''}")
    if not found:
        print("no deploy lock is held")
    return 0


def schema_usage(run) -> dict[int, str]:
    """When each schema version was last current: 'current', a time from the history, or 'never'."""
    from pinned.state.plan import history_events

    o = run.observed[run.desired.web_hosts[0].name]
    schema_of = {rid: r.schema for rid, r in o.releases.items()}
    usage: dict[int, str] = {}
    current = o.current_release.schema if o.current_release else None
    for when, frm, to in history_events(o, schema_of):
        if frm is not None:
            usage[frm] = when
        if to is not None:
            usage.setdefault(to, when)
    if current is not None:
        usage[current] = "current"
    return usage


def cmd_databases(args) -> int:
    run = _inspect(args)
    db = run.observed[run.desired.db_host.name]
    usage = schema_usage(run)
    rows = []
    for name in sorted(db.databases, key=run.desired.layout.schema_of_database):
        number = run.desired.layout.schema_of_database(name)
        tables, rows_estimate, size = (tuple(db.db_stats.get(name, ())) + (0, 0, 0))[:3]
        rows.append({"database": name, "schema": number, "tables": tables, "rows": rows_estimate,
                     "bytes": size, "last_used": usage.get(number, "never")})
    if args.json:
        print(json.dumps({"env": run.env, "db_host": run.desired.db_host.name, "databases": rows}, indent=2))
        return 0
    print(f"{run.desired.db_host.name}:")
    for r in rows:
        print(f"  {r['database']:<24} {r['tables']:>4} tables  ~{r['rows']:>8} rows  {r['bytes'] / 1048576:8.1f} MiB"
              f"  last used: {r['last_used']}")
    return 0


def cmd_drop_database(args) -> int:
    from pinned import backups
    from pinned.engine import locked
    from pinned.operations.connection import run
    from pinned.operations.database import drop_command
    from pinned.operations.files import sh
    from pinned.state.plan import allocate_schema

    hosts = {h.name: h for h in _connect(args.env, args.limit)}

    def drop(view) -> str:
        lay, db_spec = view.desired.layout, view.desired.db_host
        db = view.observed[db_spec.name]
        name = args.database
        if name not in db.databases:
            raise CliError(f"{name}: no such database of {view.state.app} on {db_spec.name} (see `pinned databases`)")
        number = lay.schema_of_database(name)
        current = {o.current_release.schema for o in (view.observed[w.name] for w in view.desired.web_hosts)
                   if o.current_release}
        if number in current:
            raise CliError(f"{name} is the database of the current release: it cannot be dropped")
        if number == allocate_schema(view.desired, view.observed).schema:
            raise CliError(f"{name} is the database of the pinned release ({view.desired.release.id}): "
                           "pin another first")
        saved = backups.take(hosts[db_spec.name], lay, name)
        print(f"backed up {name} before dropping it: {saved.id} ({backups.size(saved.bytes)}); to get it back, "
              f"pin and deploy a release of schema version {number}, then `pinned restore {saved.id}`", flush=True)
        ok, out = run(hosts[db_spec.name], drop_command(view.state.app, name, lay.database_grant(number)))
        if not ok:
            raise CliError(f"dropping {name} on {db_spec.name} failed: {out.stderr.strip()}")
        # The schema version is no longer complete: a later pin of one of its releases copies it again.
        for web in view.desired.web_hosts:
            run(hosts[web.name], sh('rm -f "$1/schema.json" "$2"', lay.schema_dir(number), lay.served(number)))
        return f"dropped {name} on {db_spec.name}; releases of schema version {number} stay on disk"

    print(locked(args.env, list(hosts.values()), drop))
    return 0


def _db_host(args, with_hosts: bool = False):
    """The environment's view (observed, no lock) and the db host's pyinfra host (and every host by name)."""
    hosts = {h.name: h for h in _connect(args.env, args.limit)}
    from pinned.engine import inspect

    view = inspect(args.env, list(hosts.values()))
    if with_hosts:
        return view, hosts[view.desired.db_host.name], hosts
    return view, hosts[view.desired.db_host.name]


def _web_hosts(view, hosts: dict) -> list:
    """The web hosts this run reaches (all of them, or those `--limit` kept)."""
    return [hosts[w.name] for w in view.desired.web_hosts if w.name in hosts]


def cmd_backup(args) -> int:
    """A backup of the current schema's database (no deploy lock: the dump is a consistent snapshot and
    changes nothing but the backups folder)."""
    from pinned import backups

    view, db_host, hosts = _db_host(args, with_hosts=True)
    lay = view.desired.layout
    saved = backups.take(db_host, lay, backups.current_database(view))
    print(f"{saved.id}  {backups.size(saved.bytes)}  in {saved.seconds:.1f} s  ({db_host.name}:{lay.backups_dir})")
    taken = [(db_host, saved)]
    # The uploads: each web host's shared folders (each has its own: see "Several web hosts").
    names = view.state.shared_names
    webs = _web_hosts(view, hosts) if names else []
    for web in webs:
        files = backups.take_shared(web, lay, names)
        print(f"{files.id}  {backups.size(files.bytes)}  in {files.seconds:.1f} s  ({web.name}:{lay.backups_dir}: "
              f"shared folders {', '.join(names)})")
        taken.append((web, files))
    if args.download:
        for host, backup in taken:
            folder = Path(args.download)
            if backup.database == "" and len(view.desired.web_hosts) > 1:
                folder = folder / host.name  # several web hosts: one archive each, by host
            started = time.monotonic()
            path = backups.download(host, lay, backup, folder)
            print(f"downloaded to {path} (gzip -t: ok) in {time.monotonic() - started:.1f} s")
    return 0


def cmd_backups(args) -> int:
    from pinned import backups

    view, db_host, hosts = _db_host(args, with_hosts=True)
    lay = view.desired.layout
    rows = backups.listing(db_host, lay)
    webs = _web_hosts(view, hosts) if view.state.shared_names else []
    shared = {web.name: backups.listing(web, lay, shared=True) for web in webs}
    current = {view.observed[w.name].current_release.schema for w in view.desired.web_hosts
               if view.observed[w.name].current_release}
    current_db = {lay.database(n) for n in current}
    if args.json:
        print(json.dumps({"env": view.env, "db_host": db_host.name, "folder": lay.backups_dir,
                          "backups": [{"id": b.id, "database": b.database, "bytes": b.bytes, "time": b.time,
                                       "current_database": b.database in current_db} for b in rows],
                          "shared_backups": {host: [{"id": b.id, "bytes": b.bytes, "time": b.time} for b in found]
                                             for host, found in shared.items()}}, indent=2))
        return 0
    print(f"{db_host.name}:{lay.backups_dir}")
    if not rows:
        print("  (no backups)")
    for b in rows:
        print(f"  {b.id:<44} {backups.size(b.bytes):>10}  {b.time}" + ("  (current database)" if b.database in
                                                                           current_db else ""))
    for host, found in shared.items():
        print(f"{host}:{lay.backups_dir}  (shared folders: {', '.join(view.state.shared_names)})")
        if not found:
            print("  (no backups)")
        for b in found:
            print(f"  {b.id:<44} {backups.size(b.bytes):>10}  {b.time}")
    return 0


def cmd_restore(args) -> int:
    from pinned import backups
    from pinned.engine import locked
    from pinned.freeze import writes_frozen

    hosts = {h.name: h for h in _connect(args.env, args.limit)}

    def restore_shared(view) -> str:
        """A shared-folders backup back into the web host(s) that have it (backed up first)."""
        lay, said = view.desired.layout, []
        webs = _web_hosts(view, hosts)
        having = [w for w in webs if args.id in {b.id for b in backups.listing(w, lay, shared=True)}]
        if not having:
            raise CliError(f"{args.id}: no such backup on {', '.join(w.name for w in webs)} (see `pinned backups`)")
        if len(having) > 1:
            raise CliError(f"{args.id} is on {', '.join(w.name for w in having)}: choose one with --limit")
        web = having[0]
        if view.state.shared_names:
            before = backups.take_shared(web, lay, view.state.shared_names)
            print(f"backed up the shared folders of {web.name} before restoring: {before.id} "
                  f"({backups.size(before.bytes)})", flush=True)
            said.append(f"; the state before is {before.id}")
        done, seconds = backups.restore_shared(web, lay, args.id)
        return f"{done} from {args.id} into {lay.shared_root} on {web.name} in {seconds:.1f} s" + "".join(said)

    def restore(view) -> str:
        lay = view.desired.layout
        if lay.is_shared_backup(args.id):
            return restore_shared(view)
        db_host = hosts[view.desired.db_host.name]
        database = backups.current_database(view)
        belongs = lay.database_of_backup(args.id)
        if belongs is None:
            raise CliError(f"{args.id}: not a backup id of {view.state.app} (see `pinned backups`)")
        if belongs != database:
            number = lay.schema_of_database(belongs)
            raise CliError(f"{args.id} is a backup of {belongs} (schema version {number}), not of the current "
                           f"database {database}: pin a release of schema version {number} (`pinned releases`) "
                           "and deploy it first")
        if args.id not in {b.id for b in backups.listing(db_host, lay)}:
            raise CliError(f"{args.id}: no such backup on {db_host.name} (see `pinned backups`)")
        saved = backups.take(db_host, lay, database)
        print(f"backed up {database} before restoring: {saved.id} ({backups.size(saved.bytes)})", flush=True)
        # The site's writes are refused while the database is replaced (reads go on), and let through again
        # afterwards whether the restore worked or not.
        with writes_frozen(view.desired, lay.schema_of_database(database), list(hosts.values())):
            said, seconds = backups.restore(db_host, lay, args.id, database)
        return (f"{said} from {args.id} into {database} on {db_host.name} in {seconds:.1f} s; the state before "
                f"is {saved.id}")

    print(locked(args.env, list(hosts.values()), restore))
    return 0


def cmd_secret(args) -> int:
    """pinned secret set NAME [--from-file F] | list [--json] | unset NAME."""
    import getpass

    from pinned import secrets
    from pinned.engine import locked
    from pinned.state.check import check_env
    from pinned.state.plan import PINNED_SECRETS
    from pinned.state.previews import preview_secret_names

    if args.action == "list":
        view = _inspect(args)
        db = view.observed[view.desired.db_host.name]
        have = db.secret_fingerprints
        declared = list(view.state.secrets)
        rows = []
        for name in [*PINNED_SECRETS, *declared, *sorted(set(have) - set(PINNED_SECRETS) - set(declared))]:
            kind = "pinned's own" if name in PINNED_SECRETS else ("declared" if name in declared else
                                                                "not declared (the next deploy removes it)")
            preview = name in preview_secret_names(view.desired)
            if preview:
                kind = "pinned's own (a preview's database password)"
            running = [w.name for w in view.desired.web_hosts
                       if name in have and not preview
                       and ((view.observed[w.name].loaded or {}).get("secrets") or {}).get(name) != have[name]]
            rows.append({"name": name, "fingerprint": have.get(name), "kind": kind,
                         "restart_pending_on": running})
        if args.json:
            print(json.dumps({"env": view.env, "db_host": view.desired.db_host.name, "secrets": rows}, indent=2))
            return 0
        print(f"{view.desired.db_host.name}:{view.desired.layout.secrets}")
        for r in rows:
            value = r["fingerprint"] or ("(generated by the next deploy)" if r["name"] in PINNED_SECRETS else
                                         "(no value: `pinned secret set " + r["name"] + "`)")
            pending = f"  (the app runs with another value on {', '.join(r['restart_pending_on'])}: deploy)" \
                if r["restart_pending_on"] else ""
            print(f"  {r['name']:<32} {value:<14} {r['kind']}{pending}")
        return 0

    checked = check_env(args.env)
    name = args.name
    if name not in checked.state.secrets and args.action == "set":
        raise CliError(f"secret {name} is not declared in {checked.path}: add it to `secrets:` first (only names "
                       "go there)")
    value = ""
    if args.action == "set":
        if args.from_file:
            try:
                value = Path(args.from_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"--from-file {args.from_file}: cannot read it as UTF-8 text: "
                               f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
        elif sys.stdin.isatty():
            value = getpass.getpass(f"value of {name} (not echoed): ")
        else:
            value = sys.stdin.read()
        try:
            value = secrets.check_value(value)
        except secrets.SecretError as exc:
            raise CliError(str(exc)) from None
    hosts = {h.name: h for h in _connect(args.env, args.limit)}

    def work(view) -> str:
        db = view.desired.db_host
        if args.action == "unset" and name not in (view.observed[db.name].secrets or {}).get("keys", ()):
            raise CliError(f"secret {name} has no value on {db.name}: nothing to remove")
        if name in PINNED_SECRETS:
            raise CliError(f"{name} is pinned's own secret: it cannot be set or removed")
        try:
            secrets.store(hosts[db.name], view.desired.layout, args.action, name, value)
        except secrets.SecretError as exc:
            raise CliError(str(exc)) from None
        if args.action == "set":
            return (f"secret {name} stored on {db.name} (value not shown); `pinned deploy` restarts the app with it "
                    "(`pinned plan` shows it)")
        still = " It is still declared in the state file: the plan is blocked until it is set again or removed " \
                "from `secrets:`." if name in view.state.secrets else ""
        return f"secret {name} removed from {db.name}.{still}"

    print(locked(args.env, list(hosts.values()), work))
    return 0


def cmd_daily(args) -> int:
    """manage / shell / logs / status (pinned/daily.py)."""
    from pinned import daily

    hosts = _connect(args.env, args.limit)
    from pinned.engine import inspect

    view = inspect(args.env, hosts)
    try:
        if args.command == "manage":
            rest = list(args.args)
            if rest[:1] == ["--"]:
                rest = rest[1:]
            if not rest:
                raise CliError("manage: name the management command: pinned manage -- check --deploy")
            return daily.manage(view, hosts, rest, args.host)
        if args.command == "shell":
            return daily.shell(view, hosts, args.host)
        if args.command == "logs":
            return daily.logs(view, hosts, args.process, args.since, args.follow, args.lines)
        return daily.status(view, hosts, args.json)
    except daily.DailyError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl-C ends `logs -f` (and a manage command's output here): no traceback
        return 130


def cmd_init(args) -> int:
    from pinned.init import InitError, init

    ssh = {k: v for k, v in (("user", args.ssh_user), ("port", args.ssh_port), ("key", args.ssh_key)) if v}
    web = list(args.web or []) + list(args.host or [])
    db = args.db or (args.host[0] if args.host else None)
    if db and not web:
        raise CliError("--db needs --web (or --host for one server in both roles)")
    try:
        path, g = init(Path.cwd(), args.env, web, db, ssh or None, force=args.force)
    except InitError as exc:
        raise CliError(str(exc)) from None
    shown = path if not path.is_relative_to(Path.cwd()) else path.relative_to(Path.cwd())
    print(f"wrote {shown} (and pinned.schema.json beside it, for editors). Found:")
    for label, value in (("app", g.app), ("django.settings", g.settings), ("django.project_dir", g.project_dir),
                         ("django.requirements", g.requirements),
                         ("django.wsgi", "(the project's WSGI_APPLICATION)"),
                         ("site.static_url", g.static_url), ("repository", g.repository),
                         ("release", f"{g.release} (HEAD)")):
        print(f"  {label:20} {value}")
    for note in g.notes:
        print(f"  note: {note}")
    if not web:
        print(f"next: name your servers under `hosts:` in {shown}, then `pinned --env {args.env} plan`")
    else:
        print(f"next: pinned --env {args.env} plan")
    return 0


def cmd_schema(args) -> int:
    from pinned.init import schema_text

    sys.stdout.write(schema_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pinned", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=os.environ.get("PINNED_ENV") or DEFAULT_ENV,
                        help="environment: ENV.yaml in this folder or PINNED_STATE_DIR (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="show what a deploy would change (changes nothing)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when changes are pending")
    p.add_argument("--out", metavar="FILE", help="save the plan and what it was computed from, for `pinned apply`")
    p = sub.add_parser("apply", help="run exactly a saved plan (pinned plan --out FILE), or nothing if the hosts, "
                       "the state file or the pinned commit changed")
    p.add_argument("file", metavar="FILE")
    p = sub.add_parser("deploy", help="pyinfra inventory.py deploy.py for this environment")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser("pin", help="pin a commit or tag of the repository in the state file")
    p.add_argument("ref")
    p = sub.add_parser("releases", help="releases on each web host")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("preview", help="previews in the state file: add NAME REF --port N | --host, remove NAME")
    preview = p.add_subparsers(dest="action", required=True)
    q = preview.add_parser("add", help="run a commit/tag beside current at its own address")
    q.add_argument("name")
    q.add_argument("ref")
    q.add_argument("--port", type=int, help="the port nginx serves it on")
    q.add_argument("--host", action="store_true", help="serve it at <name>.<first server name>")
    q.add_argument("--write", action="store_true", help="with the current schema: may write the current database")
    q.add_argument("--keep-data", action="store_true", help="with other migrations: pinning its release later "
                   "adopts its own database as it is (promote: keep-data) instead of a fresh copy")
    q = preview.add_parser("remove", help="take a preview out of the state file")
    q.add_argument("name")
    sub.add_parser("history", help="switches of `current` recorded on the hosts")
    sub.add_parser("unlock", help="end the deploy lock of a hung run (shows who held it)")
    p = sub.add_parser("databases", help="the schema versions' databases: size and last use")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("drop-database", help="drop one schema version's database (never the current or pinned)")
    p.add_argument("database", help="its full name, e.g. agroguia_v0")
    p = sub.add_parser("backup", help="back up the current schema's database on the db host, and the web hosts' "
                       "shared folders")
    p.add_argument("--download", metavar="DIR", help="also copy them to DIR on this machine (checked with gzip -t)")
    p = sub.add_parser("backups", help="the backups on the db host and the web hosts: id, size, time")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("restore", help="restore a backup of the current schema's database, or of a web host's "
                       "shared folders (backed up first)")
    p.add_argument("id", help="a backup's id, as `pinned backups` lists it")
    p = sub.add_parser("init", help="write a commented state file for an environment (default: production) "
                       "from the Django project in this git repository")
    p.add_argument("--host", action="append", metavar="NAME", help="a server in both roles (web and db)")
    p.add_argument("--web", action="append", metavar="NAME", help="a web server (repeatable)")
    p.add_argument("--db", metavar="NAME", help="the database server")
    p.add_argument("--ssh-user", metavar="USER")
    p.add_argument("--ssh-port", type=int, metavar="PORT")
    p.add_argument("--ssh-key", metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite an existing state file")
    sub.add_parser("schema", help="print the state file's JSON Schema (for editors)")
    p = sub.add_parser("secret", help="the app's secrets on the db host: set NAME (value on stdin), list, unset NAME")
    secret = p.add_subparsers(dest="action", required=True)
    q = secret.add_parser("set", help="store a declared secret's value, read from standard input (or --from-file)")
    q.add_argument("name")
    q.add_argument("--from-file", metavar="FILE", help="read the value from FILE (one line)")
    q = secret.add_parser("list", help="names and short fingerprints of the secrets (never values)")
    q.add_argument("--json", action="store_true")
    q = secret.add_parser("unset", help="remove a secret and its value from the db host")
    q.add_argument("name")
    p = sub.add_parser("manage", help="run a management command in the current release (first web host or --host)")
    p.add_argument("--host", metavar="NAME", help="this web host instead of the first")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- COMMAND ARGS… (manage.py's)")
    p = sub.add_parser("shell", help="manage.py shell in the current release (first web host or --host)")
    p.add_argument("--host", metavar="NAME", help="this web host instead of the first")
    p = sub.add_parser("logs", help="journald of the current release's units on every web host, by host")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")
    p.add_argument("--process", metavar="NAME", help="only `web`, one of `processes:` or of `schedule:`")
    p.add_argument("--since", metavar="WHEN", help="journalctl's --since (e.g. '-1h', '2026-11-26 10:00')")
    p.add_argument("-n", "--lines", type=int, default=100, help="the last N lines of each host (default 100)")
    p = sub.add_parser("status", help="per web host: current release, its units, timers' last runs, disk use")
    p.add_argument("--json", action="store_true")
    # --env and --limit are accepted after the command too (pinned plan --env staging).
    parser.add_argument("--limit", action="append", help="only this host or group (repeatable)")
    for action in [*sub.choices.values(), *secret.choices.values(), *preview.choices.values()]:
        action.add_argument("--env", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        action.add_argument("--limit", action="append", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    if args.command == "init" and not any(a == "--env" or a.startswith("--env=") for a in given) \
            and not os.environ.get("PINNED_ENV"):
        args.env = "production"
    commands = {"init": cmd_init, "schema": cmd_schema,
                "plan": cmd_plan, "apply": cmd_apply, "deploy": cmd_deploy, "pin": cmd_pin, "releases": cmd_releases,
                "preview": cmd_preview,
                "history": cmd_history, "unlock": cmd_unlock,
                "databases": cmd_databases, "drop-database": cmd_drop_database,
                "backup": cmd_backup, "backups": cmd_backups, "restore": cmd_restore, "secret": cmd_secret,
                "manage": cmd_daily, "shell": cmd_daily, "logs": cmd_daily, "status": cmd_daily}
    from pinned.backups import BackupError
    from pinned.engine import EngineError

    try:
        return commands[args.command](args)
    except (StateFileError, CliError, EngineError, BackupError) as exc:
        print(f"pinned: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # inventory.py / session refusing to go on, with its own message
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        return exc.code if isinstance(exc.code, int) and exc.code else 1


if __name__ == "__main__":
    sys.exit(main())
