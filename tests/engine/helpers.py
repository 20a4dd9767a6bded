"""Shared helpers of the engine tests."""

from __future__ import annotations

from dshell.model import Resources, RunSpec, Task

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
