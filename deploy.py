"""pinned: converge the hosts to the environment's state file.

    pyinfra inventory.py deploy.py --dry     # print the plan, change nothing
    pyinfra inventory.py deploy.py           # print the plan, confirm, converge

The engine (pinned/engine.py) checks the state file, takes the deploy lock, observes every host and
computes the plan once, and prints it. The lock is held by this process's connections: it ends when the
process ends (done, failed, declined, killed), so no operation releases it; the first phase that changes
anything, and the switch, start by checking that this run still holds it (a run that lost it — blocked at
the confirmation longer than the holder's heartbeat timeout, or ended by `pinned unlock` while hung — stops
before changing anything more). The quick phases' commands are bounded (state.plan.PHASE_TIMEOUTS): a host
that stops answering there (a cut network) fails the run instead of hanging it.
Here each of this host's steps becomes exactly one operation, called with the fields of the step's
change. Steps run phase by phase (state.plan.PHASES), each phase on every host before the next, so no host
switches before all are ready (and with FAIL_PERCENT = 0 in config.py, a failure on any host stops every
host).
"""

import os
import sys

from pyinfra import host

from pinned.engine import environment_run
from pinned.operations import files, lock
from pinned.operations.table import OPERATIONS
from pinned.state.model import selected_env
from pinned.state.plan import PHASE_TIMEOUTS, PHASES, SYMBOL

run = environment_run(selected_env(sys.argv, os.environ), dry="--dry" in sys.argv)

# Every host walks the same sequence of slots (phase, i) — its i-th step of the phase, or nothing — so
# pyinfra runs each slot on all hosts at once and no host runs ahead into a later phase.
# (A rollout's batches are waves of the phase `rollout`: each wave's slots come after the previous one's.)
busy = [phase for phase in PHASES if run.plan.width(phase)]
for phase in host.loop(PHASES):
    mine = run.plan.slots(host.name, phase)
    if run.lock and phase in busy and (phase == busy[0] or phase in ("switch", "rollout")):
        lock.check(path=run.desired.layout.lock, line=run.lock.lines[host.name],
                   name=f"({phase}: the deploy lock is still ours)", _timeout=PHASE_TIMEOUTS.get(phase))
    for i in host.loop(range(len(mine))):
        step = mine[i]
        if step:
            OPERATIONS[type(step.change)](name=f"{SYMBOL[step.action]} {step.kind} {step.target}",
                                          _timeout=PHASE_TIMEOUTS.get(phase), **step.change.arguments())
        else:
            files.nothing(name=f"({phase}: nothing here)")
