"""Validation of a RunSpec and construction of its tasks (pure: no I/O, no commit)."""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

from dshell.errors import UsageError
from dshell.model import MAX_INSTANCES, Resources, RunSpec, StateChange, Task, TaskState

from . import constraints as placement
from . import preemption
from .allocator import DEFAULT_ROLE, ROLE_NAME, Allocator
from .ids import IdGenerator, default_name, sanitize_name
from .tasks import TaskRecord, TaskRuntime, utcnow

SERVICE_LABEL = "dshell.service"
INSTANCE_LABEL = "dshell.instance"
VERSION_LABEL = "dshell.version"
_PORT_NAME = re.compile(r"^[A-Za-z0-9_-]*$")
_ROLE = ROLE_NAME
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate(spec: RunSpec) -> None:
    """Raise UsageError naming the first bad field of ``spec``."""
    if not spec.command or not all(spec.command):
        raise UsageError("run: a command is required (argv, or one shell string)")
    if any("\x00" in arg for arg in spec.command):
        raise UsageError("run: command contains a NUL byte")
    if not 1 <= spec.instances <= MAX_INSTANCES:
        raise UsageError(f"run: instances must be 1..{MAX_INSTANCES}, not {spec.instances}")
    res = spec.resources
    for field in ("cpus", "mem", "disk", "gpus"):
        if getattr(res, field) < 0:
            raise UsageError(f"run: {field} must not be negative")
    if res.gpus > 0:
        raise UsageError("run: the local engine has no GPUs")
    named = [p for p in spec.ports if p]
    if len(named) != len(set(named)):
        raise UsageError("run: port names must be unique")
    if spec.processes is not None:
        from . import thermos

        bad = thermos.problem(spec.processes)
        if bad:
            raise UsageError(f"run: processes: {bad}")
    if spec.port_numbers:
        _check_port_numbers(spec)
    for port in spec.ports:
        if not _PORT_NAME.match(port):
            raise UsageError(f"run: bad port name {port!r} (letters, digits, '_' and '-')")
    for key, value in spec.env.items():
        if not _ENV_KEY.match(key) or "\x00" in value:
            raise UsageError(f"run: bad environment variable {key!r}")
    bad = preemption.problem(spec.tier, 0 if spec.priority is None else spec.priority)
    if bad:
        raise UsageError(f"run: {bad}")
    if spec.role is not None and not _ROLE.match(spec.role):
        raise UsageError(f"run: bad role {spec.role!r}")
    if spec.workdir is not None:
        wd = PurePosixPath(spec.workdir)
        if wd.is_absolute() or ".." in wd.parts:
            raise UsageError("run: workdir must be a relative path inside the sandbox")
    if spec.after:
        raise UsageError("run: the local engine does not support after yet")
    _rules(spec)


def _check_port_numbers(spec: RunSpec) -> None:
    if len(spec.port_numbers) != len(spec.ports):
        raise UsageError("run: port_numbers must match ports one to one (0: any free port)")
    fixed = [p for p in spec.port_numbers if p]
    if any(not 0 < p < 65536 for p in fixed):
        raise UsageError(f"run: host ports must be 1..65535, not {fixed}")
    if len(fixed) != len(set(fixed)):
        raise UsageError(f"run: the same host port twice in {fixed}")


def _rules(spec: RunSpec) -> tuple[placement.Rule, ...]:
    try:
        return placement.to_rules(spec.constraints)
    except UsageError as exc:
        raise UsageError(f"run: {exc.message}") from None


def _placement_rules(spec: RunSpec, allocator: Allocator, res: Resources) -> list[placement.Rule]:
    """The validated constraints; UsageError naming one the agents can never satisfy."""
    rules = list(_rules(spec))
    if rules:
        why = placement.never_reason(rules, placement.sites_of(allocator.agents.values()), res)
        if why is not None:
            raise UsageError(f"run: {why}")
    return rules


def build(
    spec: RunSpec, ids: IdGenerator, allocator: Allocator, *, templates: bool = False
) -> list[TaskRecord]:
    """The STAGING records of ``spec``; UsageError if invalid or if it can never fit.

    A spec labelled ``dshell.service`` (the services controller's) makes service instances:
    ``service`` is that label and ``instance`` the ``dshell.instance`` label."""
    validate(spec)
    res = Resources(
        cpus=spec.resources.cpus,
        mem=spec.resources.mem,
        disk=spec.resources.disk,
        ports=len(spec.ports),
    )
    if not allocator.fits_ever(res):
        raise UsageError(
            f"run: no agent can ever hold this task (cpus {res.cpus:g}, mem {res.mem:g} MiB, "
            f"disk {res.disk:g} MiB, {res.ports} ports); agents: "
            + "; ".join(
                f"{a.spec.id} cpus {a.total.cpus:g} mem {a.total.mem:g} disk {a.total.disk:g} "
                f"ports {a.port_count}"
                for a in allocator.agents.values()
            )
        )
    fixed = [p for p in spec.port_numbers if p]
    if fixed and not allocator.offers_ports(fixed):
        ranges = "; ".join(
            f"{a.spec.id} " + ",".join(f"{lo}-{hi}" for lo, hi in a.spec.ports)
            for a in allocator.agents.values()
        )
        raise UsageError(f"run: no agent offers host port(s) {fixed} (agents' ranges: {ranges})")
    rules = _placement_rules(spec, allocator, res)
    stored = [r.constraint() for r in rules]  # normalized: what the runtime keeps
    if spec.processes is not None:  # a Thermos task: the process runner is the command
        from . import thermos

        command = thermos.command(spec.processes)
    else:
        command = [" ".join(spec.command)] if spec.shell else list(spec.command)
    name = sanitize_name(spec.name) if spec.name else default_name(command, spec.shell)
    now = utcnow()
    records = []
    service = spec.labels.get(SERVICE_LABEL)
    first = int(spec.labels.get(INSTANCE_LABEL, "0")) if service else 0
    group = f"service:{service}" if service else None  # else the submission: its first task
    parent = os.environ.get("DSHELL_PARENT_TASK") or None  # a nested engine: its host task
    for index in range(first, first + spec.instances):
        task_id = ids.new_id(name)
        group = group or f"run:{task_id}"
        task = Task(
            id=task_id,
            name=name,
            state=TaskState.STAGING,
            backend="local",
            framework_id="dshell",
            role=spec.role or DEFAULT_ROLE,
            command=command,
            shell=spec.shell and spec.processes is None,
            resources=res,
            labels=dict(spec.labels),
            env=dict(spec.env),
            instance=index,
            service=service,
            parent_task=parent,
            tier=spec.tier or preemption.default_tier(service is not None),
            priority=spec.priority or 0,
            created_at=now,
            sandbox=None,
            history=[StateChange(state=TaskState.STAGING.value, at=now)],
        )
        rt = TaskRuntime(
            idem_key=spec.idempotency_key,
            tty=spec.tty,
            port_names=list(spec.ports),
            port_numbers=list(spec.port_numbers) if any(spec.port_numbers) else [],
            workdir=spec.workdir,
            templates=templates,
            placement_group=group if rules else None,
            constraints=list(stored),
        )
        records.append(TaskRecord(task, rt))
    return records
