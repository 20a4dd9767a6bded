"""Shared helpers of the engine tests."""

from __future__ import annotations

import json
from typing import Any

from dshell.model import Resources, RunSpec, Task
from dshell.testing.fixtures import CliRunner

from dshell_local.client import EngineClient

SMALL = Resources(cpus=0.01, mem=16)


def spec(*argv: str, **kw: object) -> RunSpec:
    kw.setdefault("resources", SMALL)
    return RunSpec(command=list(argv), **kw)  # type: ignore[arg-type]


def sh(script: str, **kw: object) -> RunSpec:
    kw.setdefault("resources", SMALL)
    return RunSpec(command=[script], shell=True, **kw)  # type: ignore[arg-type]


def run_one(client: EngineClient, s: RunSpec) -> Task:
    return client.submit(s)[0]


def output(client: EngineClient, task_id: str, stream: str = "stdout") -> bytes:
    return b"".join(client.read_file(task_id, stream))


# ---- through the CLI ----------------------------------------------------------------------


def ok(cli: CliRunner, line: str | list[str]) -> str:
    """Run a command line that must succeed; its stdout."""
    res = cli(line)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def task(cli: CliRunner, ident: str) -> dict[str, Any]:
    """``inspect IDENT -o json``."""
    return json.loads(ok(cli, f"inspect {ident} -o json"))


def node(cli: CliRunner, ident: str) -> dict[str, Any]:
    """One agent's row of ``nodes -o json``."""
    rows = json.loads(ok(cli, "nodes -o json"))
    return next(r for r in rows if r["id"] == ident)
