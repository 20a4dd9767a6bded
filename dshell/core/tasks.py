"""Task verbs as functions of (session, query) → model objects. Nothing here prints."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from ..backend import Capability, TaskQuery, require
from ..errors import TimeoutExpired
from ..model import TERMINAL_STATES
from .fanout import Fanned, fan_out, sort_rows, target_mounts
from .refs import TaskRef, resolve_tasks

if TYPE_CHECKING:
    from ..model import Agent, Task, TaskStats
    from ..session import Session


def matches(task: Task, query: TaskQuery) -> bool:
    """The core's own re-check of a query (backends may filter less)."""
    if not query.all and task.state in TERMINAL_STATES and not query.states:
        return False
    if query.states and task.state not in query.states:
        return False
    if query.service and task.service != query.service:
        return False
    return all(task.labels.get(k) == v for k, v in query.selector.items())


def ps(
    session: Session, path: str | None, query: TaskQuery, sort_by: str | None = None
) -> Fanned[Task]:
    """Tasks of every mount under ``path``, merged; finished ones only with ``query.all``."""

    # Asking for a terminal state implies looking at finished tasks.
    terminal = {s.value for s in TERMINAL_STATES}
    wide = msgspec.structs.replace(query, all=True) if terminal & set(query.states) else query

    def call(backend, mount):  # type: ignore[no-untyped-def]
        require(backend, Capability.TASKS, "ps")
        return [t for t in backend.list_tasks(wide) if matches(t, query)]

    result = fan_out(session, target_mounts(session, path), call)
    result.rows = sort_rows(result.rows, sort_by or "created_at")
    if query.limit is not None:
        result.rows = result.rows[: query.limit]
    return result


def nodes(session: Session, path: str | None, sort_by: str | None = None) -> Fanned[Agent]:
    def call(backend, mount):  # type: ignore[no-untyped-def]
        require(backend, Capability.AGENTS, "nodes")
        return backend.list_agents()

    result = fan_out(session, target_mounts(session, path), call)
    result.rows = sort_rows(result.rows, sort_by)
    return result


def stats(session: Session, path: str | None) -> Fanned[TaskStats]:
    def call(backend, mount):  # type: ignore[no-untyped-def]
        require(backend, Capability.STATS, "top")
        return backend.stats()

    result = fan_out(session, target_mounts(session, path), call)
    # A nested framework's task already counts its children (they run inside its cgroup): a
    # child whose parent is listed too is left out, so `top /` counts each resource once.
    listed = {s.task_id for s in result.rows}
    result.rows = [s for s in result.rows if s.parent_task not in listed]
    result.rows.sort(key=lambda s: -s.cpu_percent)
    return result


def inspect(session: Session, ref: str) -> Task:
    tref = resolve_tasks(session, [ref], one=True)[0]
    task = tref.backend.get_task(tref.task.id)
    task.mount = tref.mount.target
    task.backend = tref.mount.type
    return task


def kill(
    trefs: list[TaskRef], *, signal: int | None = None, grace: float | None = None
) -> list[Task]:
    out = []
    for tref in trefs:
        require(tref.backend, Capability.SIGNAL if signal else Capability.KILL, "kill")
        task = tref.backend.kill(tref.task.id, signal=signal, grace=grace)
        task.mount = tref.mount.target
        out.append(task)
    return out


def wait(
    trefs: list[TaskRef], *, states: set[str] | None = None, timeout: float | None = None
) -> list[Task]:
    """Wait for each task to reach one of ``states`` (default: any terminal state)."""
    want = states or {s.value for s in TERMINAL_STATES}
    deadline = None if timeout is None else time.monotonic() + timeout
    done: list[Task] = []
    for tref in trefs:
        backend = tref.backend
        while True:
            task = backend.get_task(tref.task.id)
            if task.state in want:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutExpired(f"timed out waiting for {task.id} (state {task.state})")
            if task.state in TERMINAL_STATES:
                break  # it will never reach the wanted state
            if Capability.ATTACH in backend.capabilities and want >= {
                s.value for s in TERMINAL_STATES
            }:
                task = backend.wait_task(task.id, timeout=left)
                if task.state in TERMINAL_STATES:
                    break
            else:
                time.sleep(min(0.5, left) if left is not None else 0.5)
        task.mount = tref.mount.target
        done.append(task)
    return done
