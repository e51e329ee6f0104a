"""`pinned preview add/remove`: the state file's `previews:` edited as text, so its comments and layout stay
(a YAML round trip would drop them). Each edit is checked by reading both texts as YAML: the result must be
the old data with exactly that preview added, changed or removed, else nothing is written and the message
says to edit the file by hand."""

from __future__ import annotations

import re

import yaml


class EditError(Exception):
    pass


TOP = re.compile(r"^previews:[ \t]*(\{\s*\})?[ \t]*(#.*)?$")


def yaml_key(name: str) -> str:
    """The name as a YAML key: bare, unless YAML would read it as something else (`no` is false, `1` a number)."""
    return name if yaml.safe_load(f"{name}: 0") == {name: 0} else f'"{name}"'


def entry_text(name: str, entry: dict) -> str:
    parts = [f"release: \"{entry['release']}\""]  # quoted: a hash of digits (and one e) is no number
    if entry.get("port") is not None:
        parts.append(f"port: {entry['port']}")
    if entry.get("host"):
        parts.append("host: true")
    if entry.get("database", "read") != "read":
        parts.append(f"database: {entry['database']}")
    if entry.get("promote", "fresh-copy") != "fresh-copy":
        parts.append(f"promote: {entry['promote']}")
    return f"{yaml_key(name)}: {{{', '.join(parts)}}}"


def _block(lines: list[str]) -> tuple[int, int, str] | None:
    """(index of the `previews:` line, index after its block, the block's indent) or None when absent."""
    for i, line in enumerate(lines):
        if line.startswith("previews:"):
            if not TOP.match(line.rstrip("\n")):
                raise EditError("its `previews:` is written on one line with entries; write it as a block "
                                "(previews:\\n  NAME: {release: ..., port: ...}) or edit it by hand")
            end, indent = i + 1, ""
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t", "#"))):
                if lines[end].strip() and not lines[end].lstrip().startswith("#") and not indent:
                    indent = lines[end][:len(lines[end]) - len(lines[end].lstrip())]
                end += 1
            while end > i + 1 and not lines[end - 1].strip():
                end -= 1
            return i, end, indent or "  "
    return None


def _entry_span(lines: list[str], start: int, end: int, indent: str, name: str) -> tuple[int, int] | None:
    for j in range(start, end):
        if re.match(rf"^{re.escape(indent)}(?:{re.escape(name)}|\"{re.escape(name)}\"|'{re.escape(name)}'):(\s|$)",
                    lines[j]):
            k = j + 1
            while k < end and (not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > len(indent)):
                k += 1
            return j, k
    return None


def _check(old: str, new: str, name: str, entry: dict | None) -> str:
    try:
        before, after = yaml.safe_load(old) or {}, yaml.safe_load(new) or {}
    except yaml.YAMLError:
        raise EditError("the edit would not leave valid YAML (an unusual layout of `previews:`, e.g. an anchor): "
                        "edit the file by hand") from None
    expect = dict(before)
    previews = dict(expect.get("previews") or {})
    if entry is None:
        previews.pop(name, None)
    else:
        previews[name] = {k: v for k, v in entry.items() if v is not None and v is not False
                          and (k, v) not in (("database", "read"), ("promote", "fresh-copy"))}  # defaults
    expect["previews"] = previews
    got = dict(after)
    got["previews"] = got.get("previews") or {}
    if "previews" not in before and not previews:
        expect.pop("previews")
        got.pop("previews", None) if not got["previews"] else None
    if got != expect:
        raise EditError("the edit would change more than that preview (an unusual layout of `previews:`): "
                        "edit the file by hand")
    return new


def add(text: str, name: str, entry: dict) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    found = _block(lines)
    line = entry_text(name, entry)
    if found is None:
        new = "".join(lines) + f"previews:\n  {line}\n"
    else:
        i, end, indent = found
        lines[i] = re.sub(r"\{\s*\}", "", lines[i].rstrip("\n")).rstrip() + "\n" if "{" in lines[i] else lines[i]
        span = _entry_span(lines, i + 1, end, indent, name)
        if span:
            lines[span[0]:span[1]] = [f"{indent}{line}\n"]
        else:
            lines[end:end] = [f"{indent}{line}\n"]
        new = "".join(lines)
    return _check(text, new, name, entry)


def remove(text: str, name: str) -> str:
    lines = text.splitlines(keepends=True)
    found = _block(lines)
    span = _entry_span(lines, found[0] + 1, found[1], found[2], name) if found else None
    if span is None:
        raise EditError(f"no preview {name!r} under `previews:`")
    del lines[span[0]:span[1]]
    i = found[0]
    rest = [ln for ln in lines[i + 1:found[1] - (span[1] - span[0])] if ln.strip() and not ln.lstrip().startswith("#")]
    if not rest:
        lines[i] = "previews: {}" + lines[i].rstrip("\n")[len("previews:"):] + "\n"
    return _check(text, "".join(lines), name, None)
