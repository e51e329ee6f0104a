"""Rendering a plan: text in Terraform's manner, and JSON. Reads only `Step`s; never prints a secret.

The JSON document (`pinned plan --json`) is stable; its fields are described in the README
("The plan as JSON"). `format_version` changes only when a field changes meaning or goes away.
"""

from __future__ import annotations

import json

from .plan import ADD, BLOCKED, CHANGE, REMOVE, SYMBOL, Plan, Step

SENSITIVE = "(sensitive)"
FORMAT_VERSION = 1


def step_line(step: Step) -> str:
    target = f"{step.target} {SENSITIVE}" if step.sensitive else step.target
    return f"  {SYMBOL[step.action]} {step.kind} {target}  ({step.reason})"


def summary_line(plan: Plan, state_file: str) -> str:
    if plan.status == BLOCKED:
        return f"Plan blocked: the hosts cannot converge to {state_file}. Nothing will be changed."
    if plan.empty:
        return f"No changes. Hosts match {state_file}."
    s = plan.summary
    return f"Plan: {s[ADD]} to add, {s[CHANGE]} to change, {s[REMOVE]} to remove."


def render_text(plan: Plan, state_file: str, color: bool = False) -> str:
    colors = {ADD: "\033[32m", CHANGE: "\033[33m", REMOVE: "\033[31m"} if color else {}
    red, reset = ("\033[1;31m", "\033[0m") if color else ("", "")
    out = [f"pinned plan for environment '{plan.env}' ({state_file})", ""]
    for host in plan.hosts:
        steps = plan.for_host(host)
        if not steps:
            continue
        out.append(f"{host}:")
        for step in steps:
            out.append(colors.get(step.action, "") + step_line(step) + (reset if step.action in colors else ""))
            if step.diff and not step.sensitive:
                out.extend("      " + line for line in step.diff.rstrip("\n").splitlines())
        out.append("")
    if plan.certificates:
        out.append("Certificates:")
        out.extend(f"  {line.text()}" for line in plan.certificates)
        out.append("")
    if plan.warnings:
        out.append("Warnings:")
        out.extend(f"  ! {w}" for w in plan.warnings)
        out.append("")
    if plan.blocked:
        out.append(f"{red}BLOCKED — this plan cannot be applied:{reset}")
        out.extend(f"{red}  x {reason}{reset}" for reason in plan.blocked)
        out.append("")
    out.append(summary_line(plan, state_file))
    return "\n".join(out) + "\n"


def plan_json(plan: Plan, state_file: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "env": plan.env,
        "state_file": state_file,
        "status": plan.status,
        "steps": [
            {"host": s.host, "action": s.action, "kind": s.kind, "phase": s.phase,
             "target": SENSITIVE if s.sensitive else s.target, "reason": s.reason,
             **({"diff": s.diff} if s.diff and not s.sensitive else {})}
            for s in plan.steps
        ],
        "warnings": list(plan.warnings),
        "certificates": [
            {"host": x.host, "source": x.source, "state": x.state, "subject": x.subject, "names": list(x.names),
             "issuer": x.issuer, "not_after": x.not_after, "days_left": x.days_left}
            for x in plan.certificates
        ],
        "blocked": list(plan.blocked),
        "summary": plan.summary,
    }


def render_json(plan: Plan, state_file: str) -> str:
    return json.dumps(plan_json(plan, state_file), indent=2) + "\n"
