"""The request handlers: one function per op, from a typed request to a result Struct.

``spawn``/``spawn_batch`` are batched by the server (see server.py) and ``sweep`` answers later
(killer.py); everything else answers at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import msgspec

from . import procfs
from .killer import Sweep, parse_signal, signal_task
from .loop import Loop
from .protocol import (
    CGROUP_FAILED,
    NOT_FOUND,
    NOT_TTY,
    AckReq,
    AckResult,
    CgroupPathsResult,
    Empty,
    JoinReq,
    JoinResult,
    ListResult,
    ProtocolError,
    ResizeReq,
    SignalReq,
    SignalResult,
    StatsResult,
    SweepResult,
    TaskReq,
    TaskStats,
    WriteStdinReq,
    WriteStdinResult,
)
from .tasks import Task, TaskManager

Reply = Callable[[msgspec.Struct], None]


def _task(mgr: TaskManager, task_id: str) -> Task:
    task = mgr.get(task_id)
    if task is None:
        raise ProtocolError(NOT_FOUND, f"no such task: {task_id}")
    return task


def op_signal(mgr: TaskManager, req: SignalReq) -> SignalResult:
    """Signal the task's process group."""
    sig = parse_signal(req.signal)
    return SignalResult(delivered=signal_task(mgr, _task(mgr, req.task_id), sig))


def op_sweep(
    loop: Loop, mgr: TaskManager, req: TaskReq, reply: Callable[[SweepResult], None]
) -> None:
    """Start a sweep; ``reply`` is called when it is over."""
    Sweep(loop, mgr, _task(mgr, req.task_id), reply).start()


def op_list(mgr: TaskManager) -> ListResult:
    """Every known task, exited ones included until acknowledged."""
    return ListResult(tasks=[t.info() for t in mgr.tasks.values()])


def op_ack(mgr: TaskManager, req: AckReq) -> AckResult:
    """Forget exited tasks."""
    forgotten, running = mgr.ack(req.task_ids)
    return AckResult(forgotten=forgotten, running=running)


def op_stats(mgr: TaskManager) -> StatsResult:
    """CPU, RSS and process count of each running task (cgroup counters, else /proc)."""
    live = [t for t in mgr.tasks.values() if t.rec.running and t.rec.pid]
    out = []
    if mgr.cg is not None:
        cg = mgr.cg
        for t in live:
            if t.cg is None:
                continue
            cpu, rss, n = cg.usage(t.cg)
            out.append(TaskStats(t.rec.task_id, cpu or 0, rss or 0, n))
        return StatsResult(tasks=out)
    sessions = procfs.sessions_usage()  # one /proc pass for all tasks
    for t in live:
        cpu, rss, n = sessions.get(t.rec.pid or 0, (0, 0, 0))
        out.append(TaskStats(t.rec.task_id, cpu, rss, n))
    return StatsResult(tasks=out)


def op_cgroup_paths(mgr: TaskManager, req: TaskReq) -> CgroupPathsResult:
    """The task's cgroup directories."""
    task = _task(mgr, req.task_id)
    return CgroupPathsResult(paths=task.cg.dirs() if task.cg else [])


def op_join(mgr: TaskManager, req: JoinReq) -> JoinResult:
    """Put an engine-spawned process (exec, health check) into the task's cgroups."""
    task = _task(mgr, req.task_id)
    if task.cg is None or mgr.cg is None:
        return JoinResult(controllers=[])
    if req.pid in (os.getpid(), 0, 1):
        raise ProtocolError(CGROUP_FAILED, f"refusing to move pid {req.pid}")
    try:
        return JoinResult(controllers=mgr.cg.join(task.cg, req.pid))
    except OSError as exc:
        raise ProtocolError(
            CGROUP_FAILED, f"join pid {req.pid}: {exc.strerror or exc}", exc.errno
        ) from None


def _pty_of(mgr: TaskManager, task_id: str) -> Task:
    task = _task(mgr, task_id)
    if task.pty is None:
        raise ProtocolError(NOT_TTY, f"task {task_id} has no terminal (not tty, or it exited)")
    return task


def op_write_stdin(mgr: TaskManager, req: WriteStdinReq) -> WriteStdinResult:
    """Queue text for a tty task."""
    task = _pty_of(mgr, req.task_id)
    assert task.pty is not None
    return WriteStdinResult(written=task.pty.write(req.data.encode()))


def op_resize(mgr: TaskManager, req: ResizeReq) -> Empty:
    """Resize a tty task's terminal."""
    task = _pty_of(mgr, req.task_id)
    assert task.pty is not None
    task.pty.resize(req.rows, req.cols)
    return Empty()
