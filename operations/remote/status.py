# Runs ON a web host (python3, standard library only), as root: what `pinned status` shows of one app.
# argv[1]: JSON {root, units: [...], timers: {timer: service}, socket, host, health_url}. Prints one JSON line.
import json
import os
import subprocess
import sys

C = dict(os.environ, LC_ALL="C", LANG="C")


def show(unit, props):
    proc = subprocess.run(["systemctl", "show", "-p", ",".join(props), unit], capture_output=True, text=True, env=C)
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def du(path):
    if not os.path.isdir(path):
        return None
    proc = subprocess.run(["du", "-sb", path], capture_output=True, text=True, env=C)
    return int(proc.stdout.split()[0]) if proc.returncode == 0 and proc.stdout else None


args = json.loads(sys.argv[1])
out = {"units": {}, "timers": {}, "disk": {}}
for unit in args["units"]:
    out["units"][unit] = show(unit, ["ActiveState", "SubState", "ActiveEnterTimestamp", "NRestarts"])
for timer, service in sorted(args["timers"].items()):
    t = show(timer, ["ActiveState", "LastTriggerUSec", "NextElapseUSecRealtime"])
    s = show(service, ["Result", "ExecMainStatus", "ExecMainStartTimestamp", "ExecMainExitTimestamp", "ActiveState"])
    # The command's last run, however it was started (by the timer, or by hand with systemctl start).
    out["timers"][timer] = {"active": t.get("ActiveState"), "last": s.get("ExecMainStartTimestamp") or "",
                            "triggered": t.get("LastTriggerUSec") or "", "running": s.get("ActiveState") or "",
                            "next": t.get("NextElapseUSecRealtime") or "", "result": s.get("Result") or "",
                            "status": s.get("ExecMainStatus") or "", "finished": s.get("ExecMainExitTimestamp") or ""}
for name in ("versions", "venvs", "shared"):
    out["disk"][name] = du(os.path.join(args["root"], name))
if args.get("socket") and os.path.exists(args["socket"]):
    proc = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--unix-socket",
                           args["socket"], "-H", "Host: " + args["host"], "http://localhost" + args["health_url"]],
                          capture_output=True, text=True)
    out["health"] = proc.stdout.strip() or "no answer"
print(json.dumps(out, sort_keys=True))
