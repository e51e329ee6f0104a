"""python -m bench [--runs N] [--only NAME[,NAME]] [--skip-multi]

Boots sandbox hosts (prefix `pbench`, or $PINNED_BENCH_PREFIX; never the tests' or the demo's), times pinned's
deploys on them, prints a table of figures and ratios and writes bench/results.json (fields: bench/README.md;
with --only, the figures of earlier runs not measured again are kept). It prints figures and shows targets next
to them; it never asserts on timings. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

PREFIX = os.environ.get("PINNED_BENCH_PREFIX") or "pbench"
os.environ["PINNED_SANDBOX_PREFIX"] = PREFIX  # before sandbox.core is imported
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from pinned.sandbox import core  # noqa: E402

BENCH = ROOT / "bench"
LOGS = BENCH / "logs"
RESULTS = BENCH / "results.json"
REPO = ROOT / ".build" / "agroguia"
PYINFRA = str(ROOT / ".venv" / "bin" / "pyinfra")
PINNED = str(ROOT / ".venv" / "bin" / "pinned")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
APP = "agroguia"
SRV = f"/srv/{APP}"

FIGURES = ("floor", "noop", "code_only", "rollback", "rollback_warm", "restart", "schema_change", "plan_1", "plan_100",
           "setup_from_zero", "apt_pip_alone", "freeze_100k", "copy_migrate_alone", "backup", "restore",
           "mysqldump_alone", "code_only_warm", "code_only_shallow", "first_deploy", "venv_pip_alone",
           "deploy_kept_1", "deploy_kept_20", "deploy_kept_100", "schema_change_10k", "schema_change_100k",
           "rollout_batches", "rollout_all")
FIRST_FIGURES = ("first_deploy", "venv_pip_alone")
SHALLOW_FIGURES = ("code_only_warm", "code_only_shallow")
DATA_FIGURES = ("freeze_100k", "copy_migrate_alone", "backup", "restore", "mysqldump_alone")
ONE, MULTI = "1", "4+1"
SINGLE_HOSTS = [("one", ["web", "db"])]
MULTI_HOSTS = [("w1", ["web"]), ("w2", ["web"]), ("w3", ["web"]), ("w4", ["web"]), ("db", ["db"])]
FRESH_SINGLE = [("fresh", ["web", "db"])]
FRESH_MULTI = [("fw1", ["web"]), ("fw2", ["web"]), ("fw3", ["web"]), ("fw4", ["web"]), ("fdb", ["db"])]
APT_HOST = [("apt", ["web", "db"])]
APT_PIP = ("export DEBIAN_FRONTEND=noninteractive; "
           "apt-get update -q && apt-get install -y -q nginx mariadb-server python3-venv && "
           "python3 -m venv /tmp/v && "
           "/tmp/v/bin/pip install -q 'Django>=5.2,<5.3' 'gunicorn>=25' 'PyMySQL>=1.1.3'")
WHAT = {
    "floor": "pyinfra connect + `exec -- true`",
    "noop": "deploy A, already current",
    "code_only": "deploy B (code only, not on disk: built)",
    "rollback": "deploy A (on disk, stopped: after its keep_warm window) while B is current",
    "rollback_warm": "deploy A while B is current, A still warm (within keep_warm: no start)",
    "restart": "ssh: restart A's service until /health/ answers",
    "schema_change": "deploy C (schema change) over A",
    "plan_1": "pinned plan, 1 release on disk",
    "plan_100": "pinned plan, 100 releases on disk",
    "setup_from_zero": "deploy A to bare hosts (apt, pip, all)",
    "apt_pip_alone": "ssh: apt-get + venv/pip installs only",
    "freeze_100k": "write freeze of deploying C over A with 100k more rows (as the deploy reports it)",
    "copy_migrate_alone": "on the host: mysqldump | mysql of the same database + C's migrate, nothing else",
    "backup": "pinned backup of the current database (100k more rows), whole command",
    "restore": "pinned restore of that backup (pre-restore backup and write freeze included), whole command",
    "mysqldump_alone": "on the host: mysqldump --single-transaction of the same database | gzip, nothing else",
    "code_only_warm": "deploy B over A from the full repository, release cache warm",
    "code_only_shallow": "deploy B over A from a fresh `git clone --depth 1` of B, empty release cache",
    "first_deploy": "deploy A to a fresh warm host that never saw the app (users, secrets, database, venv + pip, "
                    "upload, migrate, collectstatic, start, nginx)",
    "venv_pip_alone": "ssh, on the same fresh warm host: python3 -m venv + pip install of A's requirements and "
                      "pinned's extras, nothing else",
    "deploy_kept_1": "deploy B (code only) over A, 1 release on disk (A)",
    "deploy_kept_20": "deploy B (code only) over A, 20 releases on disk in 4 schema versions, 5 of them pruned",
    "deploy_kept_100": "deploy B (code only) over A, 100 releases on disk in 4 schema versions, 5 of them pruned",
    "schema_change_10k": "deploy C (schema change) over A with 10,000 more rows",
    "schema_change_100k": "deploy C (schema change) over A with 100,000 more rows",
    "rollout_batches": "deploy B rolled out (canary 1, watched; then batches of 2), the canary's watch taken out",
    "rollout_all": "deploy B to every web host at once, beside rollout_batches",
}
CI_HOST = [("ci", ["web", "db"])]
# What the plan says a release built from the served one is sent as (the bytes of the archive uploaded).
SENT = re.compile(r"as hard links of \S+ \+ (\d+) changed file\(s\), (\d+) deleted, (\d+) bytes to send")
DATA_HOST = [("data", ["web", "db"])]
SEED_ROWS = 100_000


def seed_sql(rows: int) -> str:
    """SQL adding `rows` crops to A's database. MariaDB's sequence engine: seq_1_to_N is a table of 1..N."""
    return f"INSERT INTO {APP}_v0.crops_crop (name) SELECT CONCAT('bench-', seq) FROM {APP}_v0.seq_1_to_{rows}"


SEED_SQL = seed_sql(SEED_ROWS)
# On the host, as root: the copy a schema change makes and C's migration on it, timed alone.
COPY_MIGRATE = r"""
set -e
mysql -e "DROP DATABASE IF EXISTS bench_bare; CREATE DATABASE bench_bare CHARACTER SET utf8mb4;
          GRANT ALL PRIVILEGES ON bench_bare.* TO 'agroguia'@'localhost'"
start=$(date +%s.%N)
mysqldump --single-transaction --routines --triggers --events agroguia_v0 | mysql bench_bare
cd /srv/agroguia/current
runuser -u agroguia -- env PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -c '
import pinned_settings, django, os
pinned_settings.DATABASES["default"]["NAME"] = "bench_bare"
os.environ["DJANGO_SETTINGS_MODULE"] = "pinned_settings"
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)'
end=$(date +%s.%N)
mysql -e "DROP DATABASE bench_bare; REVOKE ALL PRIVILEGES ON bench_bare.* FROM 'agroguia'@'localhost'"
echo "$start $end"
"""
MYSQLDUMP_ALONE = r"""
set -e
db="agroguia_v$(basename "$(dirname "$(readlink /srv/agroguia/current)")")"
start=$(date +%s.%N)
mysqldump --single-transaction --routines --triggers --events "$db" | gzip > /tmp/bench-dump.sql.gz
end=$(date +%s.%N)
rm -f /tmp/bench-dump.sql.gz
echo "$start $end"
"""

T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"bench [{time.monotonic() - T0:5.0f} s] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    """A deploy or command that failed; the message is its error's first line."""


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR_LINES = (  # most telling first: an exception's own line, pinned's message, then any error-ish line
    re.compile(r"^(\[\S+\] )?[A-Za-z_.]*(Error|Exception|Exit)\b: (?!executed \d+ command)"),
    re.compile(r"^(\[\S+\] )?pinned: "),
    re.compile(r"error|failed|refused|denied|cannot|no such|timed out", re.I),
)


def first_error_line(*texts: str) -> str:
    lines = [ANSI.sub("", line).strip() for text in texts for line in (text or "").splitlines()]
    lines = [line for line in lines
             if line and not re.search(r"Traceback \(most recent|Error: executed \d+ comm", line)]
    for pattern in ERROR_LINES:
        for line in lines:
            if pattern.search(line):
                return line[:300]
    return (lines[-1] if lines else "no output")[:300]


def save_log(name: str, cmd: list[str] | str, proc) -> Path:
    LOGS.mkdir(exist_ok=True)
    path = LOGS / (re.sub(r"[^A-Za-z0-9_.+-]+", "_", name) + ".log")
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    path.write_text(f"$ {shown}\nexit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n")
    return path


# ---------------------------------------------------------------- hosts and commands

# Peak memory (ru_maxrss, KiB) of each command that exited as it should, by what it was run as (a figure's timed
# command runs as the figure's name): Results.record takes a figure's values out of it.
MAXRSS: dict[str, list[int]] = {}
# GNU time (Debian package `time`, in the Makefile's deps): it forks the command from its own small process and
# reports the command's ru_maxrss (wait4) — the command's own peak and its children's. Read from this process
# instead, a child's ru_maxrss would start at this (larger) process's RSS: Linux counts the memory a child
# leaves at exec, and getrusage(RUSAGE_CHILDREN) is the largest of every command run so far.
GNU_TIME = "/usr/bin/time"


def run_measured(cmd: list[str], env: dict, timeout: float):
    """(seconds, CompletedProcess, peak memory in KiB or None) of one command, run under GNU time (its own
    fork and exec, ~1 ms, inside the seconds). Output goes to temporary files."""
    with tempfile.TemporaryDirectory(prefix="pinned-bench-run-") as tmp:
        rss_file = Path(tmp) / "maxrss"
        wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd] if os.path.exists(GNU_TIME) else cmd
        with open(Path(tmp) / "out", "w+") as out, open(Path(tmp) / "err", "w+") as err:
            started = time.perf_counter()
            child = subprocess.Popen(wrapped, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_tree(child.pid)
                child.wait()
                raise
            seconds = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(cmd, child.returncode, out.read(), err.read())
        said = rss_file.read_text().split() if rss_file.exists() else []
        maxrss = int(said[-1]) if said and said[-1].isdigit() else None
    return seconds, proc, maxrss


def kill_tree(pid: int) -> None:
    """SIGKILL a process started here and its children (GNU time's command), by their ids."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for one in [*children, str(pid)]:
        try:
            os.kill(int(one), signal.SIGKILL)
        except ProcessLookupError:
            pass


class HostSet:
    """Sandbox hosts deployed together as one environment (a state file in a temporary folder)."""

    def __init__(self, label: str, specs: list[tuple[str, list[str]]], image: str, env: str, state_dir: Path,
                 commits: dict):
        self.label, self.specs, self.image, self.env = label, specs, image, env
        self.state_dir, self.commits = state_dir, commits
        self.names = [name for name, _ in specs]
        self.web = [name for name, roles in specs if "web" in roles]
        self.info: dict[str, core.HostInfo] = {}
        self.key = ""
        self.environ: dict[str, str] = {}  # more environment for pinned's commands (e.g. PINNED_CACHE)
        self.state_extra: dict = {}  # more fields of the state file (e.g. keep_releases, rollout)

    def boot(self) -> None:
        progress(f"booting {', '.join(self.names)} ({self.image} image, not timed)")
        try:
            sb = core.up([(name, list(roles)) for name, roles in self.specs], image=self.image)
        except core.SandboxError as exc:
            raise Failed(f"booting {', '.join(self.names)}: {str(exc).splitlines()[0]}") from None
        self.key = sb.ssh_key
        self.info = {h.name: h for h in sb.hosts if h.name in self.names}

    def down(self) -> None:
        core.down(self.names)

    def pin(self, tag: str, repository: Path = REPO) -> None:
        state = {"app": APP, "repository": str(repository), "release": self.commits[tag]["commit"],
                 "django": {"settings": "agroguia.settings"}, "hosts": "sandbox", "site": {"health_url": "/health/"}}
        state.update(self.state_extra)
        (self.state_dir / f"{self.env}.yaml").write_text(yaml.safe_dump(state, sort_keys=False))

    def limit(self, names: list[str] | None = None) -> list[str]:
        return [a for name in (names or self.names) for a in ("--limit", name)]

    def run(self, what: str, cmd: list[str], ok=(0,), timeout: float = 1800, rss_key: str | None = None):
        """(seconds, process) of a command run like a user runs it; Failed unless its exit code is ok. Its peak
        memory goes to MAXRSS[rss_key or what] (the figures' `maxrss_mib`)."""
        env = {**os.environ, "PINNED_STATE_DIR": str(self.state_dir), "PINNED_SANDBOX_PREFIX": PREFIX,
               **self.environ}
        try:
            seconds, proc, maxrss_kib = run_measured(cmd, env, timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{what}: timed out after {timeout:.0f} s") from None
        if proc.returncode not in ok:
            log = save_log(f"{what}-{self.label}", cmd, proc)
            raise Failed(f"{what} exited {proc.returncode}: {first_error_line(proc.stderr, proc.stdout)} "
                         f"(log: {log.relative_to(ROOT)})")
        if maxrss_kib is not None:
            MAXRSS.setdefault(rss_key or what, []).append(maxrss_kib)
        return seconds, proc

    def deploy(self, tag: str, what: str, repository: Path = REPO, out: list | None = None,
               profile: list | None = None) -> float:
        """Seconds of one deploy of release `tag`; Failed unless it exits 0 and every web host's `current`
        is then that release (checked after the clock stops). `out` gets the deploy's process; `profile` the
        seconds per phase of the first web host (the deploy then runs through bench/profile_run.py)."""
        self.pin(tag, repository)
        pyinfra = [PYTHON, "-m", "bench.profile_run"] if profile is not None else [PYINFRA]
        events = Path(self.state_dir) / "profile.json"
        if profile is not None:
            self.environ["PINNED_BENCH_PROFILE"] = str(events)
        try:
            seconds, proc = self.run(what, [*pyinfra, "-y", *self.limit(), "--data", f"env={self.env}",
                                            "inventory.py", "deploy.py"])
        finally:
            self.environ.pop("PINNED_BENCH_PROFILE", None)
        if profile is not None:
            from bench.profile_run import summarize
            profile.append(summarize(json.loads(events.read_text()), self.web[0]))
        if out is not None:
            out.append(proc)
        want = self.release_id(tag)
        for name in self.web:
            current = self.ssh_out(name, f"readlink {SRV}/current || true", f"{what}-check").strip()
            if not current.endswith("/" + want):
                raise Failed(f"{what}: pyinfra exited 0 but {name}'s current is {current or 'missing'}, not {want}")
        return seconds

    def floor(self) -> float:
        return self.run("floor", [PYINFRA, "-y", *self.limit(), "--data", f"env={self.env}", "inventory.py",
                                  "exec", "--", "true"])[0]

    def plan(self, what: str, detailed: bool = False):
        extra = ["--detailed-exitcode"] if detailed else []
        return self.run(what, [PINNED, "--env", self.env, *self.limit(), "plan", *extra],
                        ok=(0, 2) if detailed else (0,))

    def ssh(self, name: str, command: str, what: str, timeout: float = 1800) -> float:
        cmd = ["ssh", *core.ssh_options(self.key), f"root@{self.info[name].address}", command]
        return self.run(f"{what}-{name}", cmd, timeout=timeout, rss_key=what)[0]

    def ssh_out(self, name: str, command: str, what: str) -> str:
        cmd = ["ssh", *core.ssh_options(self.key), f"root@{self.info[name].address}", command]
        return self.run(f"{what}-{name}", cmd, rss_key=what)[1].stdout

    def ssh_all(self, names: list[str], command: str, what: str) -> None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
            for future in [pool.submit(self.ssh, name, command, what) for name in names]:
                future.result()

    def release_id(self, tag: str) -> str:
        return f"{self.commits[tag]['time']}-{self.commits[tag]['commit'][:12]}"


# ---------------------------------------------------------------- results


class Results:
    def __init__(self, runs: int):
        self.runs = runs
        self.figures: dict[str, dict] = {}

    @staticmethod
    def key(name: str, hosts: str) -> str:
        return name if hosts == ONE else f"{name}_{hosts}"

    def record(self, name: str, hosts: str, runs: list[float], error: str | None = None, note: str = "",
               extra: dict | None = None) -> None:
        fig = {"figure": name, "hosts": hosts, "what": WHAT[name], "median": None, "min": None, "max": None,
               "runs": [round(s, 3) for s in runs]}
        if runs and not error:
            fig.update(median=round(statistics.median(runs), 3), min=round(min(runs), 3), max=round(max(runs), 3))
        if error:
            fig["error"] = error
        if note:
            fig["note"] = note
        rss = MAXRSS.pop(name, [])  # the timed command's peak memory, each successful run
        if rss:
            fig["maxrss_mib"] = round(statistics.median(rss) / 1024, 1)
            fig["maxrss_mib_runs"] = [round(kib / 1024, 1) for kib in rss]
        fig.update(extra or {})
        self.figures[self.key(name, hosts)] = fig
        if error:
            progress(f"{self.key(name, hosts)}: FAILED: {error}")
        else:
            progress(f"{self.key(name, hosts)}: median {fig['median']:.2f} s "
                     f"(runs {', '.join(f'{s:.2f}' for s in runs)})")

    def fail(self, names, hosts: str, error: str) -> None:
        for name in names:
            self.record(name, hosts, [], error)

    def measure(self, name: str, hosts: str, n: int, once, note: str = "") -> bool:
        """Run `once(i)` (returns seconds, raises Failed) n times; a failure ends the figure (null)."""
        runs: list[float] = []
        for i in range(n):
            progress(f"{self.key(name, hosts)}: run {i + 1}/{n}")
            try:
                runs.append(once(i))
            except Failed as exc:
                self.record(name, hosts, runs, str(exc), note)
                return False
        self.record(name, hosts, runs, note=note)
        return True

    def median(self, name: str, hosts: str):
        fig = self.figures.get(self.key(name, hosts))
        return fig["median"] if fig else None


def evaluate(res: Results) -> None:
    """Ratios and targets (shown next to the figures, never asserted)."""
    for fig in res.figures.values():
        name, hosts, median = fig["figure"], fig["hosts"], fig["median"]
        floor = res.median("floor", hosts)
        fig["ratio_to_floor"] = round(median / floor, 2) if median and floor else None
        checks = []

        def check(target: str, value, limit, unit: str = "×") -> None:
            met = None if value is None or limit is None else value <= limit
            shown = None if value is None else (f"{value:.2f}{unit}" if unit == "×" else f"{value:.2f} s")
            checks.append({"target": target, "value": None if value is None else round(value, 3),
                           "limit": None if limit is None else round(limit, 3), "shown": shown, "met": met})

        if name == "noop":
            check("≤ 1.3× floor", fig["ratio_to_floor"], 1.3)  # #14 (it was 1.5×)
        elif name == "code_only":
            check("≤ 2.5× floor", fig["ratio_to_floor"], 2.5)
        elif name == "rollback_warm":
            check("≤ 1.3× floor", fig["ratio_to_floor"], 1.3)
        elif name == "rollback":
            restart = res.median("restart", hosts) or res.median("restart", ONE)
            limit = 2 * floor + restart if floor and restart else None
            check("≤ 2× floor + restart", median, limit, unit="s")
            check("≤ 2× floor", fig["ratio_to_floor"], 2)
        elif name == "setup_from_zero" and hosts == ONE:
            apt = res.median("apt_pip_alone", ONE)
            check("≤ 1.2× apt_pip_alone", median / apt if median and apt else None, 1.2)
        elif name == "freeze_100k":
            check("≤ 5 s", median, 5, unit="s")
            bare = res.median("copy_migrate_alone", hosts)
            check("≤ 1.5× copy_migrate_alone", median / bare if median and bare else None, 1.5)
        elif name in ("backup", "restore"):
            bare = res.median("mysqldump_alone", hosts)
            fig["ratio_to_mysqldump"] = round(median / bare, 2) if median and bare else None
        elif name == "code_only_shallow":
            warm = res.median("code_only_warm", hosts)
            check("≤ 1.3× code_only_warm", median / warm if median and warm else None, 1.3)
            warm_bytes = (res.figures.get(res.key("code_only_warm", hosts)) or {}).get("bytes_sent")
            same = None if not fig.get("bytes_sent") or not warm_bytes else set(fig["bytes_sent"]) == set(warm_bytes)
            checks.append({"target": "bytes sent = code_only_warm's", "value": fig.get("bytes_sent"),
                           "limit": warm_bytes, "met": same,
                           "shown": None if same is None else f"{fig['bytes_sent'][0]} vs {warm_bytes[0]} bytes"})
        elif name == "first_deploy" and hosts == ONE:
            bare = res.median("venv_pip_alone", ONE)
            check("≤ 1.2× venv_pip_alone", median / bare if median and bare else None, 1.2)
        elif name == "plan_100":
            p1 = res.median("plan_1", hosts)
            check("≤ 1.1× plan_1", median / p1 if median and p1 else None, 1.1)
        elif name in ("deploy_kept_20", "deploy_kept_100"):
            k1 = res.median("deploy_kept_1", hosts)
            fig["ratio_to_kept_1"] = round(median / k1, 2) if median and k1 else None
            if name == "deploy_kept_100":
                check("≤ 1.2× deploy_kept_1", fig["ratio_to_kept_1"], 1.2)
        elif name == "schema_change_100k":
            t10k = res.median("schema_change_10k", hosts)
            fig["ratio_to_10k"] = round(median / t10k, 2) if median and t10k else None
            rows = ROWS["schema_change_100k"] - ROWS["schema_change_10k"]
            fig["cost_per_row_us"] = round((median - t10k) / rows * 1e6, 2) if median and t10k else None
            # the same from the write freeze the deploys report (copy, migrate, health check, switch): less noise
            f10k = (res.figures.get(res.key("schema_change_10k", hosts)) or {}).get("freeze_s")
            f100k = fig.get("freeze_s")
            fig["freeze_cost_per_row_us"] = (round((statistics.median(f100k) - statistics.median(f10k)) / rows * 1e6,
                                                   2) if f10k and f100k else None)
        elif name == "rollout_batches":
            together = res.median("rollout_all", hosts)
            fig["ratio_to_all_at_once"] = round(median / together, 2) if median and together else None
        if hosts == MULTI:
            single = res.median(name, ONE)
            fig["scaling_to_1_host"] = round(median / single, 2) if median and single else None
            if name not in ("floor", *ROLLOUT_FIGURES):  # a rollout has no 1-host figure
                check("≤ 1.3× 1 host", fig["scaling_to_1_host"], 1.3)
        fig["target"] = "; ".join(c["target"] for c in checks) or None
        fig["checks"] = checks
        fig["target_met"] = (None if not checks or any(c["met"] is None for c in checks)
                             else all(c["met"] for c in checks))


def table(res: Results) -> str:
    def num(x, fmt="{:.2f}"):
        return "—" if x is None else fmt.format(x)

    rows = [("figure", "hosts", "median s", "min", "max", "×floor", "×1 host", "peak MiB", "target → actual", "met")]
    order = {name: i for i, name in enumerate(FIGURES)}
    for fig in sorted(res.figures.values(), key=lambda f: (order[f["figure"]], f["hosts"] != ONE)):
        targets = "; ".join(
            f"{c['target']}" + (f" (= {c['limit']:.2f} s)" if c["target"].endswith("restart") and c["limit"] else "")
            + f" → {c['shown'] or '—'}" for c in fig["checks"])
        met = {True: "yes", False: "NO", None: "—"}[fig["target_met"]]
        rows.append((fig["figure"], fig["hosts"], num(fig["median"]), num(fig["min"]), num(fig["max"]),
                     num(fig["ratio_to_floor"], "{:.2f}×"), num(fig.get("scaling_to_1_host"), "{:.2f}×"),
                     num(fig.get("maxrss_mib"), "{:.0f}"), targets or "", met if fig["checks"] else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j in (0, 1, 8) else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
                     .rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    derived = [(key, field, fig[field]) for key, fig in res.figures.items()
               for field in ("ratio_to_kept_1", "ratio_to_10k", "cost_per_row_us", "freeze_cost_per_row_us",
                             "ratio_to_all_at_once")
               if fig.get(field) is not None]
    if derived:
        lines.append("")
        lines += [f"{key}: {field} {value}" for key, field, value in derived]
    errors = [(k, f["error"]) for k, f in res.figures.items() if f.get("error")]
    if errors:
        lines.append("")
        lines.append("not measured / failed:")
        lines += [f"  {k}: {e}" for k, e in errors]
    return "\n".join(lines)


def machine() -> dict:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "pyinfra": metadata.version("pyinfra"),
            "kernel": platform.release(), "loadavg_at_start": list(os.getloadavg()),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


# ---------------------------------------------------------------- the figures

FAKES = r"""
import json, os, secrets, subprocess, sys
root, count = sys.argv[1], int(sys.argv[2])
current = os.path.realpath(root + "/current")
schema = os.path.dirname(current)
made = []
for n in range(count):
    commit = secrets.token_hex(20)
    rid = "20250101T00%02d%02d-%s" % (n // 60, n % 60, commit[:12])
    dst = os.path.join(schema, rid)
    subprocess.run(["cp", "-al", current, dst], check=True)
    meta_path = os.path.join(dst, ".pinned", "release.json")
    with open(meta_path) as handle:
        meta = json.load(handle)
    meta.update(id=rid, commit=commit)
    os.unlink(meta_path)  # hard-linked copy: write a new file, never the real release's
    with open(meta_path, "w") as handle:
        json.dump(meta, handle, sort_keys=True)
    made.append(dst)
print(json.dumps(made))
"""


def profile_medians(profiles: list[dict[str, float]]) -> dict:
    """Per phase, the median of the profiled runs' seconds (bench/profile_run.py: `op X` are whole operations on
    the first web host, `cmd Y` the commands and uploads inside them, the rest before and after them)."""
    keys = sorted({k for p in profiles for k in p}, key=lambda k: -statistics.median(p.get(k, 0.0) for p in profiles))
    return {"how": "bench/profile_run.py around pyinfra: seconds per phase, median of the figure's runs; `op` "
                   "rows sum to the operations' time, `cmd` rows break them down (commands and uploads)",
            "seconds": {k: round(statistics.median(p.get(k, 0.0) for p in profiles), 3) for k in keys}}


def remove_release(hs: HostSet, tag: str, current_tag: str) -> None:
    """Remove a (non-current) release from the web hosts, so the next deploy of it builds it again."""
    rid, cur = hs.release_id(tag), hs.release_id(current_tag)
    script = (
        f"link={SRV}/by-id/{rid}; dir=$(readlink -e \"$link\" || true); "
        f"systemctl stop 'pinned-warm-{APP}@{rid}.timer' 2>/dev/null || true; "
        f"systemctl disable --quiet --now '{APP}@{rid}.socket' '{APP}@{rid}.service' 2>/dev/null || true; "
        f"schema=$(dirname \"${{dir:-{SRV}/versions/0/{rid}}}\"); "
        f"rm -rf \"$link\" \"$schema/{rid}\"; "
        f"if [ \"$(readlink \"$schema/last\")\" = \"{rid}\" ]; then "
        f"ln -sfn {cur} \"$schema/.last.bench\" && mv -T \"$schema/.last.bench\" \"$schema/last\"; fi"
    )
    hs.ssh_all(hs.web, script, f"remove-{tag}")


def warm_figures(res: Results, hs: HostSet, n: int, want: set[str]) -> str | None:
    """floor, noop, restart, code_only, rollback, plan_1/plan_100 on warm hosts. Returns a setup error."""
    label = hs.label
    deployed = {"noop", "code_only", "rollback", "rollback_warm", "restart", "plan_1", "plan_100"} & want
    if label == MULTI:
        deployed -= {"restart", "plan_1", "plan_100"}
    try:
        hs.boot()
    except Failed as exc:
        res.fail(["floor", *sorted(deployed)], label, str(exc))
        return str(exc)
    hs.pin("A")
    res.measure("floor", label, n, lambda i: hs.floor())
    if not deployed:
        return None
    progress(f"deploying A to {', '.join(hs.names)} (setup, not timed)")
    try:
        hs.deploy("A", "setup-deploy-A")
    except Failed as exc:
        error = f"setup deploy of A failed: {exc}"
        res.fail(sorted(deployed), label, error)
        return error

    if "noop" in deployed:
        res.measure("noop", label, n, lambda i: hs.deploy("A", "noop"))

    if "restart" in deployed:
        rid, host = hs.release_id("A"), hs.web[0]
        address = hs.info[host].address
        restart = (f"systemctl restart '{APP}@{rid}.service' || exit 1; i=0; while [ $i -lt 100 ]; do "
                   f"code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 --unix-socket "
                   f"/run/pinned-{APP}/{rid}.sock -H 'Host: {address}' http://localhost/health/); "
                   f"case \"$code\" in 2??) exit 0;; esac; i=$((i+1)); sleep 0.1; done; exit 1")
        res.measure("restart", label, n, lambda i: hs.ssh(host, restart, "restart"))

    if {"code_only", "rollback", "rollback_warm"} & deployed:
        code, back, warm, err_code, err_back = [], [], [], None, None
        profiles: dict[str, list] = {"code_only": [], "rollback": [], "rollback_warm": []}
        prof = (lambda name: profiles[name]) if label == ONE else (lambda name: None)
        rid_a = hs.release_id("A")
        # A's keep_warm window ended: what its timer's service does when it elapses (not timed).
        end_window = (f"systemctl stop 'pinned-warm-{APP}@{rid_a}.timer'; "
                      f"systemctl start 'pinned-warm-{APP}@{rid_a}.service'; "
                      f"! systemctl is-active --quiet '{APP}@{rid_a}.service'")
        for i in range(n):
            progress(f"code_only/rollback/rollback_warm ({label}): run {i + 1}/{n}")
            try:
                code.append(hs.deploy("B", "code_only", profile=prof("code_only")))
            except Failed as exc:
                err_code = str(exc)
                err_back = f"not measured (code_only failed): {exc}"
                break
            try:
                hs.ssh_all(hs.web, end_window, "end-window-A")
                back.append(hs.deploy("A", "rollback", profile=prof("rollback")))
                hs.deploy("B", "forward-B")  # B is warm: A is kept warm in turn (not timed)
                warm.append(hs.deploy("A", "rollback_warm", profile=prof("rollback_warm")))
            except Failed as exc:
                err_back = str(exc)
                break
            try:
                remove_release(hs, "B", "A")
                if i == 0:
                    _, plan = hs.plan("plan-after-cleanup", detailed=True)
                    if plan.returncode != 0:
                        progress(f"warning: after removing B, the plan for A is not empty:\n{plan.stdout[-1500:]}")
            except Failed as exc:
                err_code = err_back = f"cleanup between runs failed: {exc}"
                break
        for name, runs, error in (("code_only", code, err_code), ("rollback", back, err_back),
                                  ("rollback_warm", warm, err_back)):
            if name in deployed:
                res.record(name, label, runs, error,
                           extra={"profile": profile_medians(profiles[name])} if profiles[name] else None)

    if {"plan_1", "plan_100"} & deployed:
        host = hs.web[0]
        count = (f"find {SRV}/versions -mindepth 2 -maxdepth 2 -type d "
                 f"-name '[0-9]???????T??????-????????????' | wc -l")
        try:
            on_disk = hs.ssh_out(host, count, "count-releases").strip()
        except Failed:
            on_disk = "?"
        res.measure("plan_1", label, n, lambda i: hs.plan("plan_1")[0], note=f"{on_disk} release(s) on disk")
        made: list[str] = []
        try:
            progress(f"plan_100: making 99 fake releases on {host} (not timed)")
            out = hs.ssh_out(host, f"python3 -c {shlex.quote(FAKES)} {SRV} 99", "make-fakes")
            made = json.loads(out.strip().splitlines()[-1])
            on_disk = hs.ssh_out(host, count, "count-releases").strip()
            res.measure("plan_100", label, n, lambda i: hs.plan("plan_100")[0],
                        note=f"{on_disk} release(s) on disk")
        except (Failed, ValueError) as exc:
            res.fail(["plan_100"], label, f"making the fake releases failed: {exc}")
        finally:
            if made:
                progress(f"removing the {len(made)} fake releases")
                try:
                    hs.ssh(host, "rm -rf " + " ".join(shlex.quote(p) for p in made), "remove-fakes")
                except Failed as exc:
                    progress(f"warning: {exc}")
    return None


def fresh_figure(res: Results, name: str, label: str, n: int, specs, image: str, env: str, state_dir: Path,
                 commits: dict, body) -> None:
    """A figure measured on newly booted hosts each run (booting not timed); the hosts stop after each run."""
    def once(i: int) -> float:
        hs = HostSet(label, specs, image, env, state_dir, commits)
        try:
            hs.boot()
            return body(hs)
        finally:
            hs.down()
    res.measure(name, label, n, once)


def setup_from_zero(hs: HostSet, profile: list | None = None) -> float:
    return hs.deploy("A", "setup_from_zero", profile=profile)


def apt_pip_alone(hs: HostSet) -> float:
    return hs.ssh(hs.names[0], APT_PIP, "apt_pip_alone")


def schema_change(hs: HostSet) -> float:
    progress(f"deploying A to {', '.join(hs.names)} (setup, not timed)")
    try:
        hs.deploy("A", "schema-setup-deploy-A")
    except Failed as exc:
        raise Failed(f"setup deploy of A failed: {exc}") from None
    return hs.deploy("C", "schema_change")


def on_host_seconds(hs: HostSet, script: str, what: str) -> float:
    """A script's own time on the host (it prints `start end`): no SSH in the figure."""
    start, end = hs.ssh_out(hs.names[0], script, what).split()[-2:]
    return float(end) - float(start)


def data_figures(res: Results, n: int, want: set[str], state_dir: Path, commits: dict) -> None:
    """A schema change's write freeze, backup and restore with 100,000 more rows in the example app, next to
    the same work done alone on the host (fresh host each run: A deployed and seeded, not timed)."""
    runs: dict[str, list[float]] = {name: [] for name in DATA_FIGURES}
    try:
        for i in range(n):
            progress(f"data figures: run {i + 1}/{n}")
            hs = HostSet(ONE, DATA_HOST, "warm", "benchdata", state_dir, commits)
            try:
                hs.boot()
                hs.deploy("A", "data-setup-deploy-A")
                hs.ssh(hs.names[0], f'mysql -e "{SEED_SQL}"', "data-seed")
                hs.pin("C")
                proc = hs.run("freeze_100k", [PYINFRA, "-y", *hs.limit(), "--data", f"env={hs.env}", "inventory.py",
                                              "deploy.py"])[1]
                lasted = re.search(r"pinned: write freeze lasted (\d+\.\d+) s", proc.stdout + proc.stderr)
                if not lasted:
                    raise Failed("freeze_100k: the deploy did not report its write freeze")
                runs["freeze_100k"].append(float(lasted.group(1)))
                runs["copy_migrate_alone"].append(on_host_seconds(hs, COPY_MIGRATE, "copy_migrate_alone"))
                seconds, proc = hs.run("backup", [PINNED, "--env", hs.env, *hs.limit(), "backup"])
                runs["backup"].append(seconds)
                backup_id = re.search(r"(\d{8}T\d{6}Z-agroguia_v\d+\.sql\.gz)", proc.stdout)
                if not backup_id:
                    raise Failed(f"backup: no backup id in its output: {proc.stdout[-300:]}")
                runs["restore"].append(hs.run("restore", [PINNED, "--env", hs.env, *hs.limit(), "restore",
                                                          backup_id.group(1)])[0])
                runs["mysqldump_alone"].append(on_host_seconds(hs, MYSQLDUMP_ALONE, "mysqldump_alone"))
            finally:
                hs.down()
    except Failed as exc:
        for name in DATA_FIGURES:
            res.record(name, ONE, runs[name], str(exc))
        return
    for name in DATA_FIGURES:
        res.record(name, ONE, runs[name])


def shallow_figures(res: Results, n: int, state_dir: Path, commits: dict) -> None:
    """A code-only release (B over A) as CI deploys it — from a fresh shallow clone with an empty release cache
    (clone and cache made anew each run, not timed) — side by side with a warm cache and the full repository:
    time and bytes sent. Both on one warm host with A deployed; after each deploy A is deployed back and B
    removed (not timed). The order alternates run by run, so both see the same load."""
    runs: dict[str, list[float]] = {name: [] for name in SHALLOW_FIGURES}
    sent: dict[str, list[int]] = {name: [] for name in SHALLOW_FIGURES}
    hs = HostSet(ONE, CI_HOST, "warm", "benchci", state_dir, commits)
    warm_cache = state_dir / "ci-warm-cache"
    hs.environ["PINNED_CACHE"] = str(warm_cache)

    def once(name: str, i: int) -> None:
        repository, what = REPO, name
        if name == "code_only_shallow":
            repository = state_dir / f"ci-clone-{i}"
            clone = subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "B", f"file://{REPO}",
                                    str(repository)], capture_output=True, text=True)
            if clone.returncode != 0:
                raise Failed(f"git clone --depth 1 failed: {clone.stderr.strip()}")
            hs.environ["PINNED_CACHE"] = str(state_dir / f"ci-cold-cache-{i}")
        procs: list = []
        try:
            runs[name].append(hs.deploy("B", what, repository, procs))
        finally:
            hs.environ["PINNED_CACHE"] = str(warm_cache)
        said = SENT.findall(procs[0].stdout)
        if len(said) != 1:
            raise Failed(f"{name}: the deploy did not say it sent B as a delta of A (sent whole?)")
        sent[name].append(int(said[0][2]))
        hs.deploy("A", f"{name}-back-to-A")
        remove_release(hs, "B", "A")

    try:
        hs.boot()
        progress(f"deploying A to {', '.join(hs.names)} and warming the release cache (setup, not timed)")
        hs.deploy("A", "ci-setup-deploy-A")
        hs.pin("B")
        hs.plan("ci-warm-cache", detailed=True)
        for i in range(n):
            order = SHALLOW_FIGURES if i % 2 == 0 else tuple(reversed(SHALLOW_FIGURES))
            for name in order:
                progress(f"{name}: run {i + 1}/{n}")
                once(name, i)
    except Failed as exc:
        for name in SHALLOW_FIGURES:
            res.record(name, ONE, runs[name], str(exc), extra={"bytes_sent": sent[name]})
        return
    finally:
        hs.down()
    for name in SHALLOW_FIGURES:
        res.record(name, ONE, runs[name], extra={"bytes_sent": sent[name]},
                   note="clone and cache made anew each run, not timed" if name == "code_only_shallow" else
                   "release cache warmed by a plan first")


FIRST_HOST = [("first", ["web", "db"])]
# The bare baseline of a first deploy: what pinned's venv step installs (operations/release.py `venv`: the
# release's requirements file and pinned's extras), with pip's own command line, into a new folder.
VENV_PIP = ("set -e; d=$(mktemp -d /tmp/bench-venv.XXXXXX); printf '%s\\n' {requirements} > \"$d.txt\"; "
            "python3 -m venv \"$d\"; \"$d/bin/pip\" install -q --disable-pip-version-check -r \"$d.txt\"")
# pip's cache (downloads and built wheels) is emptied before each of the two: neither finds the other's.
NO_PIP_CACHE = "rm -rf /root/.cache/pip"


def venv_pip_command(commits: dict) -> str:
    """VENV_PIP for release A: its requirements.txt (read from the repository at A's commit) and the extras
    pinned installs with every release (state.model.RUNTIME_REQUIREMENTS)."""
    from pinned.state.model import RUNTIME_REQUIREMENTS
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{commits['A']['commit']}:requirements.txt"],
                          capture_output=True, text=True, check=True).stdout
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return VENV_PIP.format(requirements=" ".join(shlex.quote(r) for r in (*lines, *RUNTIME_REQUIREMENTS)))


def first_figures(res: Results, n: int, state_dir: Path, commits: dict) -> None:
    """A first deploy on a provisioned host (the warm image: nginx, MariaDB, python3-venv installed) next to
    the bare `python3 -m venv` + `pip install` of the same requirements, on the same fresh host each run
    (booting not timed). pip's cache is emptied before each; the order alternates run by run. The deploy is
    profiled (bench/profile_run.py)."""
    runs: dict[str, list[float]] = {name: [] for name in FIRST_FIGURES}
    profiles: list[dict[str, float]] = []
    bare = venv_pip_command(commits)
    error = None
    for i in range(n):
        hs = HostSet(ONE, FIRST_HOST, "warm", "benchfirst", state_dir, commits)
        try:
            hs.boot()
            host = hs.names[0]
            order = FIRST_FIGURES if i % 2 == 0 else tuple(reversed(FIRST_FIGURES))
            for name in order:
                progress(f"{name}: run {i + 1}/{n}")
                hs.ssh(host, NO_PIP_CACHE, "no-pip-cache")
                if name == "first_deploy":
                    runs[name].append(hs.deploy("A", "first_deploy", profile=profiles))
                else:
                    runs[name].append(hs.ssh(host, bare, "venv_pip_alone"))
        except Failed as exc:
            error = str(exc)
            break
        finally:
            hs.down()
    for name in FIRST_FIGURES:
        res.record(name, ONE, runs[name], error, note="the same fresh warm host for both, pip's cache emptied "
                   "before each, order alternating",
                   extra={"profile": profile_medians(profiles)} if name == "first_deploy" and profiles else None)

# ---------------------------------------------------------------- the cost curve: kept releases (#14)

KEPT_FIGURES = ("deploy_kept_1", "deploy_kept_20", "deploy_kept_100")
KEPT_HOST = [("kept", ["web", "db"])]
KEPT_STORE = f"/srv/{APP}-bench"  # outside the app's root: the copy of C's release and its schema.json
# Releases on disk per schema version (0: A's, with A current; 1: C's, with C; 2 and 3: copies of C's schema
# version) for each figure, and how many of them the timed deploy prunes (keep_releases set to match).
KEPT_LAYOUT = {1: (1, 0, 0, 0), 20: (8, 4, 4, 4), 100: (40, 20, 20, 20)}
KEPT_PRUNED = 5
PRUNED = re.compile(rf"^\s*- prune {SRV}/versions/\d+/(\S+)", re.M)
# On the host: make the kept releases of a layout, remove those of no layout (bench/remote/kept_releases.py).
KEPT_SCRIPT = (BENCH / "remote" / "kept_releases.py").read_text()
# On the host, once: C stopped, its release kept aside as a template, databases v2 and v3 (remote/kept_prepare.sh).
KEPT_PREPARE = (BENCH / "remote" / "kept_prepare.sh").read_text()


def kept_layout(hs: HostSet, count: int) -> dict:
    """Puts the host in the state of `count` kept releases (not timed); returns what is on disk."""
    spec = {"root": SRV, "store": KEPT_STORE, "app": APP, "layout": list(KEPT_LAYOUT[count]),
            "a": hs.release_id("A"), "c": hs.release_id("C")}
    out = hs.ssh_out(hs.names[0], f"python3 -c {shlex.quote(KEPT_SCRIPT)} {shlex.quote(json.dumps(spec))}",
                     f"kept-layout-{count}")
    try:
        said = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise Failed(f"making {count} kept release(s): unexpected output {out[-300:]!r}") from None
    total = sum(said["on_disk"].values())
    if total != count or said["by_id"] != count:
        raise Failed(f"making {count} kept release(s): {total} on disk and {said['by_id']} by-id link(s)")
    return said["on_disk"]


def kept_keep(count: int) -> int | None:
    """keep_releases for a figure: the deploy (B into schema version 0) prunes KEPT_PRUNED of schema version 0;
    the other schema versions hold no more than that. None (the default, 5) with 1 release: nothing to prune."""
    if count == 1:
        return None
    keep = KEPT_LAYOUT[count][0] + 1 - KEPT_PRUNED
    assert all(n <= keep for n in KEPT_LAYOUT[count][1:])
    return keep


def kept_figures(res: Results, n: int, state_dir: Path, commits: dict) -> None:
    """A full deploy (B, code only, over A) with 1, 20 and 100 kept releases on one warm host, the prune of the
    extra ones included. Setup (not timed): A, then C (a schema change), then A again (a rollback across it),
    C's window ended; then per run, for each figure in turn (the order rotating run by run, so all three see the
    same load): the host put in the figure's state (kept releases made or removed), B deployed (timed; A kept
    warm), A deployed back and B removed (not timed)."""
    runs: dict[str, list[float]] = {name: [] for name in KEPT_FIGURES}
    profiles: dict[str, list] = {name: [] for name in KEPT_FIGURES}
    notes: dict[str, str] = {}
    hs = HostSet(ONE, KEPT_HOST, "warm", "benchkept", state_dir, commits)
    error = None
    try:
        hs.boot()
        progress("kept releases: deploying A, C (schema change), A again (setup, not timed)")
        hs.deploy("A", "kept-setup-A")
        hs.deploy("C", "kept-setup-C")
        hs.deploy("A", "kept-setup-A-back")
        hs.ssh(hs.names[0], f"sh -c {shlex.quote(KEPT_PREPARE)} kept-prepare "
                            + " ".join(shlex.quote(v) for v in (APP, hs.release_id("C"), KEPT_STORE, SRV)),
               "kept-prepare")
        kept_layout(hs, 100)
        hs.state_extra = {"keep_releases": max(KEPT_LAYOUT[100])}  # prunes nothing
        hs.deploy("A", "kept-setup-grants")  # the accounts' privileges on <app>_v2 and _v3
        counts = sorted(KEPT_LAYOUT)
        for i in range(n):
            for count in counts[i % len(counts):] + counts[:i % len(counts)]:
                name = f"deploy_kept_{count}"
                progress(f"{name}: run {i + 1}/{n}")
                on_disk = kept_layout(hs, count)
                keep = kept_keep(count)
                hs.state_extra = {"keep_releases": keep} if keep else {}
                procs: list = []
                runs[name].append(hs.deploy("B", name, out=procs, profile=profiles[name]))
                pruned = set(PRUNED.findall(procs[0].stdout))
                want = KEPT_PRUNED if keep else 0
                if len(pruned) != want:
                    raise Failed(f"{name}: the deploy pruned {len(pruned)} release(s), not {want}")
                notes[name] = (f"{count} release(s) on disk (per schema version: "
                               + ", ".join(f"{k}: {v}" for k, v in sorted(on_disk.items())) + "); "
                               + (f"keep_releases {keep}: the deploy prunes {want}" if keep else
                                  "keep_releases 5 (default): nothing to prune"))
                hs.deploy("A", f"{name}-back-to-A")
                remove_release(hs, "B", "A")
                hs.state_extra = {}
    except Failed as exc:
        error = str(exc)
    finally:
        hs.down()
    for name in KEPT_FIGURES:
        res.record(name, ONE, runs[name], error, notes.get(name, ""),
                   extra={"profile": profile_medians(profiles[name])} if profiles[name] else None)


# ---------------------------------------------------------------- a schema change and the database's size (#14)

ROWS_FIGURES = ("schema_change_10k", "schema_change_100k")
ROWS = {"schema_change_10k": 10_000, "schema_change_100k": 100_000}
ROWS_HOST = [("rows", ["web", "db"])]
FREEZE = re.compile(r"pinned: write freeze lasted (\d+\.\d+) s")


def rows_figures(res: Results, n: int, state_dir: Path, commits: dict) -> None:
    """The schema change (C over A: the copy of the database, C's migration, the write freeze) with 10,000 and
    with 100,000 more rows in A's database, each on a fresh warm host (booting, deploying A and adding the rows —
    as freeze_100k does, MariaDB's sequence engine — not timed); the two alternate within each run. The copy's
    cost per row is (t100k − t10k) / 90,000 rows (in `evaluate`)."""
    runs: dict[str, list[float]] = {name: [] for name in ROWS_FIGURES}
    freeze: dict[str, list[float]] = {name: [] for name in ROWS_FIGURES}
    error = None
    try:
        for i in range(n):
            for name in ROWS_FIGURES if i % 2 == 0 else tuple(reversed(ROWS_FIGURES)):
                progress(f"{name}: run {i + 1}/{n}")
                hs = HostSet(ONE, ROWS_HOST, "warm", "benchrows", state_dir, commits)
                try:
                    hs.boot()
                    hs.deploy("A", f"{name}-setup-deploy-A")
                    hs.ssh(hs.names[0], f'mysql -e "{seed_sql(ROWS[name])}"', f"{name}-seed")
                    procs: list = []
                    runs[name].append(hs.deploy("C", name, out=procs))
                    lasted = FREEZE.search(procs[0].stdout + procs[0].stderr)
                    if not lasted:
                        raise Failed(f"{name}: the deploy did not report its write freeze")
                    freeze[name].append(float(lasted.group(1)))
                finally:
                    hs.down()
    except Failed as exc:
        error = str(exc)
    for name in ROWS_FIGURES:
        res.record(name, ONE, runs[name], error, note=f"{ROWS[name]:,} more rows in A's database (crops_crop)",
                   extra={"freeze_s": freeze[name]})


# ---------------------------------------------------------------- rolling out host by host (#15)

ROLLOUT_FIGURES = ("rollout_batches", "rollout_all")
ROLLOUT = {"canary": 1, "batch": 2, "watch": "1s"}  # watch: the least allowed; its time is taken out (below)


CANARY = re.compile(r"rollout: (\S+) first \(canary")


def watch_seconds(events_file: Path, output: str) -> float:
    """The seconds of the rollout's `+ watch` operation on the canary (named by the plan's warning), from
    bench/profile_run.py's events (pyinfra runs every operation on every host: on the others it does nothing)."""
    canary = CANARY.search(output)
    if not canary:
        raise Failed("rollout_batches: the plan names no canary")
    events = json.loads(events_file.read_text())["events"]
    spans = [e["end"] - e["start"] for e in events
             if e["kind"] == "operation" and e["label"].startswith(f"{canary.group(1)}: + watch ")]
    if len(spans) != 1:
        raise Failed(f"rollout_batches: {len(spans)} watch operation(s) on the canary {canary.group(1)}, not 1")
    return spans[0]


def rollout_figures(res: Results, hs: HostSet, n: int, setup_error: str | None) -> None:
    """On the 4+1 warm hosts (A current): B (code only) rolled out with `rollout: {canary: 1, batch: 2, watch:
    1s}` — the canary w1, watched, then w2 + w3, then w4 — vs all at once, both through bench/profile_run.py;
    the canary's watch (the `+ watch` operation, as the profile times it) is taken out of the rollout's figure.
    After each, A is deployed back (all at once) and B removed (not timed). The order alternates run by run."""
    if setup_error:
        res.fail(ROLLOUT_FIGURES, MULTI, setup_error)
        return
    runs: dict[str, list[float]] = {name: [] for name in ROLLOUT_FIGURES}
    whole: dict[str, list[float]] = {name: [] for name in ROLLOUT_FIGURES}
    watched: list[float] = []
    error = None
    try:
        progress(f"rollout: A on {', '.join(hs.names)} (setup, not timed)")
        hs.deploy("A", "rollout-setup-deploy-A")
        for i in range(n):
            for name in ROLLOUT_FIGURES if i % 2 == 0 else tuple(reversed(ROLLOUT_FIGURES)):
                progress(f"{name}_{MULTI}: run {i + 1}/{n}")
                hs.state_extra = {"rollout": dict(ROLLOUT)} if name == "rollout_batches" else {}
                procs: list = []
                seconds = hs.deploy("B", name, out=procs, profile=[])
                watch = 0.0
                if name == "rollout_batches":
                    if "rollout batch 2 of 2" not in procs[0].stdout:
                        raise Failed("rollout_batches: the plan shows no second rollout batch")
                    watch = watch_seconds(Path(hs.state_dir) / "profile.json", procs[0].stdout)
                    watched.append(round(watch, 3))
                whole[name].append(round(seconds, 3))
                runs[name].append(seconds - watch)
                hs.state_extra = {}
                hs.deploy("A", f"{name}-back-to-A")
                remove_release(hs, "B", "A")
    except Failed as exc:
        error = str(exc)
    finally:
        hs.state_extra = {}
    for name in ROLLOUT_FIGURES:
        extra = {"deploy_s": whole[name]}
        if name == "rollout_batches":
            extra["watch_s"] = watched
        res.record(name, MULTI, runs[name], error, extra=extra,
                   note="the canary's watch (watch: 1s, its `+ watch` operation as bench/profile_run.py times it) "
                        "taken out of each run" if name == "rollout_batches" else "")


def phase(res: Results, label: str, n: int, want: set[str], state_dir: Path, commits: dict) -> None:
    warm_specs, fresh_specs = (SINGLE_HOSTS, FRESH_SINGLE) if label == ONE else (MULTI_HOSTS, FRESH_MULTI)
    env = "bench1" if label == ONE else "bench5"
    progress(f"=== {label} host(s): {', '.join(name for name, _ in warm_specs)}")
    hs = HostSet(label, warm_specs, "warm", env, state_dir, commits)
    try:
        setup_error = warm_figures(res, hs, n, want)
        if label == MULTI and want & set(ROLLOUT_FIGURES):
            rollout_figures(res, hs, n, setup_error)
    finally:
        hs.down()
    fresh = [f for f in ("setup_from_zero", "schema_change") if f in want]
    if label == MULTI and setup_error:
        # The warm hosts could not even be deployed: the same deploy on other hosts would fail alike.
        res.fail(fresh, label, setup_error)
        return
    if "setup_from_zero" in want:
        profiles: list[dict[str, float]] = []
        fresh_figure(res, "setup_from_zero", label, n, fresh_specs, "base", env, state_dir, commits,
                     lambda hs: setup_from_zero(hs, profiles if label == ONE else None))
        if profiles:
            res.figures[res.key("setup_from_zero", label)]["profile"] = profile_medians(profiles)
    if label == ONE and "apt_pip_alone" in want:
        fresh_figure(res, "apt_pip_alone", label, n, APT_HOST, "base", env, state_dir, commits, apt_pip_alone)
    if "schema_change" in want:
        fresh_figure(res, "schema_change", label, n, fresh_specs, "warm", env, state_dir, commits, schema_change)
    if label == ONE and want & set(DATA_FIGURES):
        data_figures(res, n, want, state_dir, commits)
    if label == ONE and want & set(SHALLOW_FIGURES):
        shallow_figures(res, n, state_dir, commits)
    if label == ONE and want & set(FIRST_FIGURES):
        first_figures(res, n, state_dir, commits)
    if label == ONE and want & set(KEPT_FIGURES):
        kept_figures(res, n, state_dir, commits)
    if label == ONE and want & set(ROWS_FIGURES):
        rows_figures(res, n, state_dir, commits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default: %(default)s)")
    parser.add_argument("--only", default="", help=f"only these figures, comma-separated: {', '.join(FIGURES)} "
                                                   "(floor is always measured: the ratios need it)")
    parser.add_argument("--skip-multi", action="store_true", help="only the 1-host figures")
    args = parser.parse_args(argv)
    want = {f.strip() for f in args.only.split(",") if f.strip()} or set(FIGURES)
    unknown = want - set(FIGURES)
    if unknown or args.runs < 1:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}" if unknown else "--runs must be ≥ 1")
    if "rollback" in want:
        want.add("restart")  # its target is 2× floor + restart
    if {"code_only", "rollback", "rollback_warm"} & want:
        want |= {"code_only", "rollback", "rollback_warm"}  # measured in one loop
    for together in (SHALLOW_FIGURES, FIRST_FIGURES, KEPT_FIGURES, ROWS_FIGURES, ROLLOUT_FIGURES):
        if want & set(together):
            want |= set(together)  # measured side by side
    if os.geteuid() != 0:
        print("bench: needs root (the sandbox: network namespaces, mounts, systemd-nspawn)", file=sys.stderr)
        return 1

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    for old in LOGS.glob("*.log"):  # logs of failed commands are of the last run only
        old.unlink()
    res = Results(args.runs)
    info = machine()
    interrupted = crashed = False
    progress(f"machine: {info}")
    commits = json.loads(subprocess.run([sys.executable, str(ROOT / "examples" / "build_repo.py"), "--json",
                                         str(REPO)], check=True, capture_output=True, text=True).stdout)
    progress("commits: " + ", ".join(f"{t}={c['commit'][:12]}" for t, c in commits.items()))
    try:
        core.down()  # leftovers of an interrupted run of this prefix (only pbench)
        with tempfile.TemporaryDirectory(prefix="pinned-bench-") as tmp:
            phase(res, ONE, args.runs, want, Path(tmp), commits)
            if args.skip_multi:
                progress("skipping the 4+1 figures (--skip-multi)")
            else:
                one_host_only = {"apt_pip_alone", "restart", "plan_1", "plan_100", *DATA_FIGURES, *SHALLOW_FIGURES,
                                 *FIRST_FIGURES, *KEPT_FIGURES, *ROWS_FIGURES}
                phase(res, MULTI, args.runs, want - one_host_only, Path(tmp), commits)
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: stopping the hosts")
    except Exception:
        crashed = True
        raise
    finally:
        try:
            core.down()
        except Exception as exc:  # noqa: BLE001 - report, keep the figures
            progress(f"warning: stopping the sandbox hosts: {exc}")
        if crashed:
            report(res, args.runs, info, "CRASHED")
    return report(res, args.runs, info, "INTERRUPTED" if interrupted else "", partial=bool(args.only))


def commit_of_this_code() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (proc.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def report(res: Results, runs: int, info: dict, status: str, partial: bool = False) -> int:
    """Prints the table and writes results.json. A partial run (--only) keeps the figures of earlier runs it
    did not measure again (each figure says when and on which commit it was measured)."""
    evaluate(res)
    wall = time.monotonic() - T0
    print(table(res))
    print(f"\nwall time {wall:.0f} s, {runs} run(s) per figure" + (f" ({status})" if status else ""))
    commit = commit_of_this_code()
    for fig in res.figures.values():
        fig.setdefault("measured_at", info["date"])
        fig.setdefault("commit", commit)
    figures = dict(res.figures)
    if partial and RESULTS.exists():
        try:
            earlier = json.loads(RESULTS.read_text()).get("figures") or {}
        except ValueError:
            earlier = {}
        figures = {**earlier, **res.figures}
    out = {"machine": info, "runs": runs, "wall_s": round(wall, 1), "status": status or "complete",
           "figures": figures}
    RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    progress(f"wrote {RESULTS.relative_to(ROOT)}")
    return 130 if status else 0


if __name__ == "__main__":
    sys.exit(main())
