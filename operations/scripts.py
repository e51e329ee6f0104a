"""The scripts that run on the hosts: files in remote/ (shell or Python), read from beside this module (so they
work from an installed package too), each run as one command with its values as positional arguments.

A shell script that uses the shared functions of remote/lib.sh sources it on one line (so that shellcheck and a
local `sh remote/x.sh ARGS` see them); `script()` puts lib.sh's text in place of that line, so on the host the
script still runs as one `sh -c TEXT pinned ARGS…`. A Python script does the same with a remote/<x>_lib.py it
imports on one line (`from secrets_lib import …`: a local `python3 remote/x.py ARGS` finds it beside it), run as
one `python3 -c TEXT ARGS…`. No value is ever put into a script's text.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pyinfra.api import QuoteString, StringCommand

REMOTE = Path(__file__).resolve().parent / "remote"
LIB = "lib.sh"
# The line by which a script sources lib.sh (after `# shellcheck source=lib.sh source-path=SCRIPTDIR`).
SOURCE_LIB = '. "$(dirname "$0")/lib.sh"'
# The Python libraries of the remote scripts, and the line by which a script imports one of them.
PY_LIBS = ("secrets_lib.py", "mysql_lib.py")
IMPORT_LIB = re.compile(r"^from ([a-z_]+_lib) import [\w, ]+$")


@cache
def script(name: str) -> str:
    """The text of remote/<name>; for a shell script that sources lib.sh, with lib.sh's text in its place; for a
    Python script, each remote/*_lib.py it imports in place of its import line.
    A shell script is sent without its comment lines (its first line, the shebang, stays): the text is the
    command line of the process on the host, and a comment quoting what a `pgrep -f` looks for would match
    the script itself."""
    text = (REMOTE / name).read_text()
    if name.endswith(".sh"):
        lines = text.splitlines(keepends=True)
        lib = (REMOTE / LIB).read_text()
        if name != LIB:
            lines = [part for line in lines
                     for part in (lib.splitlines(keepends=True) if line.rstrip("\n") == SOURCE_LIB else [line])]
        text = "".join(lines[:1] + [line for line in lines[1:] if not line.lstrip().startswith("#")])
    elif name.endswith(".py"):
        text = "".join(script(f"{m.group(1)}.py")
                       if (m := IMPORT_LIB.match(line.rstrip("\n"))) and f"{m.group(1)}.py" in PY_LIBS else line
                       for line in text.splitlines(keepends=True))
    return text


def interpreter(text: str) -> str:
    """The shell a script asks for on its first line (#!/bin/bash: bash), else sh."""
    first = text.split("\n", 1)[0]
    return "bash" if first.startswith("#!") and first.rstrip().endswith("bash") else "sh"


def sh(script: str, *args: str) -> StringCommand:
    """A fixed shell script run with its values as positional arguments ($1, $2, …), each quoted: by sh, or by
    bash when its first line says so."""
    return StringCommand(interpreter(script), "-c", QuoteString(script), "pinned",
                         *(QuoteString(str(a)) for a in args))


def run_sh(name: str, *args: str) -> StringCommand:
    """Run the shell script remote/<name> with these values as $1, $2, …"""
    return sh(script(name), *args)


def run_py(name: str, *args: str) -> StringCommand:
    """Run the Python script remote/<name> with the host's python3 (`python3 -c TEXT ARGS…`: sys.argv[1:])."""
    return StringCommand("python3", "-c", QuoteString(script(name)), *(QuoteString(str(a)) for a in args))


def chain(*commands: StringCommand) -> StringCommand:
    """Commands run one after the other as one command (one round trip), each only if the one before succeeded
    (`A && B && …`): it fails with the first that fails, whose output says which."""
    bits: list = []
    for command in commands:
        bits += [*(["&&"] if bits else []), command]
    return StringCommand(*bits)
