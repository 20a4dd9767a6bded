"""Specs as plain tasks: what ``run -f FILE`` submits for each service and job of a file.

A service or job becomes one :class:`~dshell.model.RunSpec` (its command, resources,
environment, labels, ports, instances, role and constraints). What only services and jobs
have — health checks, deployments, restart policies, schedules, dependencies — does not
apply to plain tasks: each such field that is set is named in a note, so nothing is dropped
silently (``svc deploy -f`` and the job verbs are for those).
"""

from __future__ import annotations

from typing import Any

import msgspec

from dshell.errors import UsageError
from dshell.model import Resources, RunSpec
from dshell.specs.model import BatchJobSpec, LoadedSpec, ServiceSpec

# fields that plain tasks ignore, with the verb that honours them
_SERVICE_ONLY = ("health_checks", "readiness_checks", "lifecycle", "announce", "dependencies")
_JOB_ONLY = ("schedules", "after", "retries", "timeout")


def _task_name(name: str) -> str:
    return name.strip("/").replace("/", "-") or "task"


def _needs_runner(spec: ServiceSpec | BatchJobSpec) -> bool:
    """Several processes, or one with Thermos behaviour a plain command lacks."""
    procs = spec.processes
    if len(procs) != 1:
        return len(procs) > 1
    p = procs[0]
    return p.max_failures != 1 or p.daemon or p.ephemeral or p.final


def _thermos(spec: ServiceSpec | BatchJobSpec) -> dict[str, Any]:
    """The process runner's spec (the format of ``dshell_local.thermos``)."""
    return {
        "processes": [msgspec.to_builtins(p) for p in spec.processes],
        "order": [list(o) for o in spec.process_order],
        "max_failures": getattr(spec, "max_process_failures", 1),
        "max_concurrency": getattr(spec, "max_concurrency", 0),
        "finalization_wait": spec.kill_grace_period if spec.kill_grace_period is not None else 30.0,
    }


def to_runspec(spec: ServiceSpec | BatchJobSpec, source: str) -> tuple[RunSpec, list[str]]:
    """One spec as a RunSpec, and the notes on what it leaves out."""
    processes = _thermos(spec) if _needs_runner(spec) else None
    if not spec.command and processes is None:
        raise UsageError(f"{source}: {spec.name} has no command")
    notes = []
    only = _SERVICE_ONLY if isinstance(spec, ServiceSpec) else _JOB_ONLY
    verb = "svc deploy -f" if isinstance(spec, ServiceSpec) else "a job verb"
    for field in only:
        if getattr(spec, field):
            notes.append(f"{source}: {spec.name}: {field} applies to {verb}, not to run -f")
    ports = getattr(spec, "ports", [])
    required = isinstance(spec, ServiceSpec) and spec.require_ports
    names = [p.name for p in spec.processes]
    run = RunSpec(
        command=list(spec.command) if processes is None else ["thermos", *names],
        shell=spec.shell and processes is None,
        processes=processes,
        name=_task_name(spec.name),
        resources=Resources(
            cpus=spec.resources.cpus, mem=spec.resources.mem, disk=spec.resources.disk
        ),
        env=dict(spec.env),
        ports=[p.name or "" for p in ports],
        port_numbers=[p.number for p in ports] if required else [],
        instances=max(1, spec.instances),
        role=spec.role,
        labels=dict(spec.labels),
        constraints=list(spec.constraints),
        templates=any("{{" in arg for arg in spec.command),
        tier=getattr(spec, "tier", None),  # a service's (batch jobs have none)
        priority=getattr(spec, "priority", None) or None,
    )
    return run, notes


def to_runspecs(loaded: LoadedSpec, source: str) -> tuple[list[RunSpec], list[str]]:
    """Every service (groups included) and job of a loaded file, in file order."""
    runs: list[RunSpec] = []
    notes: list[str] = []
    specs: list[ServiceSpec | BatchJobSpec] = [*loaded.all_services(), *loaded.jobs]
    for spec in specs:
        run, why = to_runspec(spec, source)
        runs.append(run)
        notes.extend(why)
    if not runs:
        raise UsageError(f"{source}: nothing to run in this file")
    return runs, notes
