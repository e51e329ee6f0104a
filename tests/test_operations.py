"""The operations, pyinfra-style: a change's arguments in, the commands out (tests/operations/*.json, as
pyinfra's own tests/operations/*.json). A command that runs a remote script is written as the script's file
name followed by its arguments, so the cases read as what runs on the host; an upload as
["upload", remote path], a download as ["download", remote path]; bytes sent from the deploying process's
memory to a command's stdin, or read from its stdout into it, as ["memory-to", key, command…] and
["memory-from", key, command…] (operations/memory.py); a local key file sent to a command's stdin as
["key-to", local path, command…] (operations/tls.py); commands chained into one (operations/scripts.py chain) as
["&&", command, command…]."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.api import FileDownloadCommand, FileUploadCommand, FunctionCommand, StringCommand

from pinned.operations import database, files, freeze, memory, release, system, tls
from pinned.operations.scripts import REMOTE, script

CASES = sorted((Path(__file__).parent / "operations").glob("*.json"))
MODULES = {"database": database, "files": files, "freeze": freeze, "release": release, "system": system, "tls": tls}
SCRIPTS = {script(p.name): p.name for p in REMOTE.iterdir() if p.suffix in (".sh", ".py")}


def value(bit) -> str:
    return str(getattr(bit, "obj", bit))


def readable(command) -> list | str:
    if isinstance(command, FileUploadCommand):
        return ["upload", command.dest]
    if isinstance(command, FileDownloadCommand):
        return ["download", command.src]
    if isinstance(command, FunctionCommand) and command.function in (memory._read, memory._write):
        inner, key = command.args
        step = readable(inner)
        return ["memory-from" if command.function is memory._read else "memory-to", key,
                *(step if isinstance(step, list) else [step])]
    if isinstance(command, FunctionCommand) and command.function is tls._send_key:  # a local key file to stdin
        source, _digest, inner = command.args
        return ["key-to", source, *readable(inner)]
    if isinstance(command, StringCommand):
        bits = list(command.bits)
        if "&&" in bits:  # operations.scripts.chain: one command of several, as ["&&", each…]
            assert all(isinstance(b, StringCommand) for b in bits[::2]) and set(bits[1::2]) == {"&&"}, bits
            return ["&&", *(readable(b) for b in bits[::2])]
        if len(bits) > 2 and value(bits[1]) == "-c" and value(bits[2]) in SCRIPTS:
            args = bits[4:] if value(bits[0]) in ("sh", "bash") else bits[3:]
            return [SCRIPTS[value(bits[2])], *(SCRIPTS.get(value(b), value(b)) for b in args)]
        return command.get_raw_value()
    return str(command)


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_operation_emits_exactly_these_commands(case):
    spec = json.loads(case.read_text())
    module, name = case.stem.split(".")[:2]
    operation = getattr(MODULES[module], name)
    got = [readable(c) for c in operation._inner(**spec["arguments"])]
    assert got == spec["commands"]
