"""Pure steps of a launch: placing a granted task, and what the executor is asked to spawn."""

from __future__ import annotations

import math
from collections.abc import Callable

from dshell.errors import UsageError
from dshell.model import PortMapping, Resources, Task, TaskState

from .allocator import Allocator, Grant
from .execport import SpawnSpec
from .sandbox import SandboxError, Sandboxes
from .tasks import TaskRecord, process_env, task_env, transition

MIN_MEM_LIMIT_MB = 4  # the kernel needs a few MiB to start anything: smaller limits get this


def place(rec: TaskRecord, grant: Grant, sandboxes: Sandboxes) -> None:
    """Give ``rec`` its agent, ports, sandbox path and environment; move it to STARTING."""
    task = rec.task
    task.agent_id, task.hostname = grant.agent_id, grant.hostname
    names = rec.rt.port_names
    task.ports = [
        PortMapping(names[i] if i < len(names) else None, p) for i, p in enumerate(grant.ports)
    ]
    task.sandbox = str(sandboxes.path(task.id))
    task.env = task_env(task, task.sandbox, names, grant.ports, task.env)
    if rec.rt.templates:
        _render(task)
    transition(task, TaskState.STARTING)


def _render(task: Task) -> None:
    """Replace Aurora-style templates (``{{thermos.ports[http]}}``…) in the command; a
    template naming an unknown port was refused when the service was deployed."""
    from dshell.specs.templates import render_templates

    ports = {p.name: p.port for p in task.ports if p.name}
    ports.update({str(i): p.port for i, p in enumerate(task.ports)})
    try:
        task.command = [
            render_templates(arg, ports, task.instance or 0, task.hostname or "", task.id)
            for arg in task.command
        ]
    except UsageError as exc:
        task.message = f"command template: {exc}"


def make_sandboxes(recs: list[TaskRecord], sandboxes: Sandboxes) -> list[str | None]:
    """Create tasks' sandboxes (in a file-system thread, while the launch holds
    ``sandboxes.making()``); per task the error text, or None."""
    errors: list[str | None] = []
    for rec in recs:
        try:
            sandboxes.create(rec.task.id, rec.rt.workdir)
        except SandboxError as exc:
            errors.append(str(exc))
        else:
            errors.append(None)
    return errors


def spawn_spec(rec: TaskRecord, pids_limit: int, base_env: dict[str, str]) -> SpawnSpec:
    """What the executor needs to start ``rec`` (limits from its resources)."""
    task = rec.task
    sandbox = task.sandbox or ""
    limits: dict[str, float] = {"pids": float(pids_limit)}
    if task.resources.mem > 0:
        limits["mem_mb"] = float(max(MIN_MEM_LIMIT_MB, math.ceil(task.resources.mem)))
    if task.resources.cpus > 0:
        limits["cpus"] = task.resources.cpus
    return SpawnSpec(
        task_id=task.id,
        argv=list(task.command),
        shell=task.shell,
        env=process_env(task.env, base_env),
        cwd=f"{sandbox}/{rec.rt.workdir}" if rec.rt.workdir else sandbox,
        stdout=f"{sandbox}/stdout",
        stderr=f"{sandbox}/stderr",
        limits=limits,
        tty=rec.rt.tty,
    )


def waiting_messages(
    waiting: list[tuple[str, Resources]],
    allocator: Allocator,
    role_of: Callable[[str], str | None] = lambda _t: None,
) -> dict[str, str]:
    """Why each waiting task does not fit now (computed once per resource shape and role)."""
    by_shape: dict[tuple[float, float, float, int, float, str | None], str] = {}
    out = {}
    for task_id, res in waiting:
        role = role_of(task_id)
        shape = (res.cpus, res.mem, res.disk, res.ports, res.gpus, role)
        if shape not in by_shape:
            by_shape[shape] = allocator.explain(res, role)
        out[task_id] = by_shape[shape]
    return out
