"""Recovery after an engine restart: rebuild the active tasks and reconcile with the executor.

Every task the database holds as active is compared with the executor's ``list`` (the
executor's journal is the record of exits: it journals an exit before announcing it, and keeps
it until the engine acks it):

==========================  ===============================================================
database / executor         outcome
==========================  ===============================================================
STAGING                     queued again for an offer (it was never spawned)
running in the executor     re-adopted (pid, start time); KILLING resumes its grace period
exited in the executor      the real exit code recorded (then the executor is told to forget)
STARTING, unknown anywhere  spawned now: it was committed but never spawned (idempotent)
RUNNING, unknown anywhere   LOST (REASON_EXECUTOR_TERMINATED)
==========================  ===============================================================

Executor tasks the database holds as ended (or not at all) are swept and forgotten.
"""

from __future__ import annotations

import logging
from collections import Counter

from dshell.model import TaskState

from .allocator import DEFAULT_ROLE
from .engine import Engine
from .execport import ExitReport, TaskInfo
from .tasks import REASON_LOST, TaskRecord, decode_record, encode_record, transition

log = logging.getLogger(__name__)


def load(engine: Engine) -> int:
    """Put the database's active tasks back in memory; return how many."""
    for data, runtime in engine.store.active_tasks():
        rec = decode_record(data, runtime)
        encode_record(rec)  # fills rec.summary
        engine.records[rec.task.id] = rec
    return len(engine.records)


async def reconcile(engine: Engine) -> dict[str, int]:
    """Match every in-memory active task against the executor; count the outcomes."""
    infos = {i.task_id: i for i in await engine.executor.list_tasks()}
    outcomes: Counter[str] = Counter()
    relaunch: list[TaskRecord] = []
    unknown = [task_id for task_id in infos if task_id not in engine.records]
    for rec in list(engine.records.values()):
        outcome = _reconcile_one(engine, rec, infos.get(rec.task.id))
        outcomes[outcome] += 1
        if outcome == "relaunched":
            relaunch.append(rec)
    for task_id in unknown:  # ended and recorded before, or never ours: let it go
        if infos[task_id].running:
            await engine.sweep(task_id)  # recorded as ended: nothing of it may keep running
        engine.queue_reap(task_id)
        outcomes["forgotten"] += 1
    await engine.store.commit()
    if relaunch:
        engine.spawn_bg(engine.launch(relaunch))
    engine.request_cycle()
    log.info("reconciled: %s", dict(outcomes))
    return dict(outcomes)


def _reconcile_one(engine: Engine, rec: TaskRecord, info: TaskInfo | None) -> str:
    task = rec.task
    if task.state is TaskState.STAGING:
        engine.framework.add(task.id, task.role or DEFAULT_ROLE, task.resources)
        return "requeued"
    _restore_allocation(engine, rec)
    if info is not None and info.running:
        return _adopt(engine, rec, info)
    if info is not None:
        engine.apply_exit(_exit_from(info))
        return "exited"
    if task.state is TaskState.STARTING and task.pid is None:
        return "relaunched"
    transition(task, TaskState.LOST, reason=REASON_LOST, message="no executor knows this task")
    engine.save(rec)
    engine.finalize(rec, spawned=True)
    return "lost"


def _restore_allocation(engine: Engine, rec: TaskRecord) -> None:
    task = rec.task
    if task.id in engine.allocator.task_place or task.agent_id not in engine.allocator.agents:
        return
    engine.allocator.allocate(
        task.id,
        task.agent_id,
        task.role or DEFAULT_ROLE,
        task.resources,
        ports=[p.port for p in task.ports],
    )


def _adopt(engine: Engine, rec: TaskRecord, info: TaskInfo) -> str:
    task = rec.task
    changed = task.pid != info.pid
    task.pid = info.pid
    rec.rt.start_time = info.start_time
    if task.state is TaskState.STARTING:
        transition(task, TaskState.RUNNING)
        engine.save(rec)
    elif changed:
        engine.save(rec, None)
    if task.state is TaskState.KILLING and task.id not in engine.timers:
        engine.arm_kill_timer(rec)
    return "adopted"


def _exit_from(info: TaskInfo) -> ExitReport:
    return ExitReport(
        task_id=info.task_id,
        pid=info.pid,
        exit_code=info.exit_code,
        signal=info.signal,
        oom=info.oom,
        lost=info.lost,
        finished_at=info.finished_at,
    )
