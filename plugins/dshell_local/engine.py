"""The engine: tasks from submission to their recorded end, over the master and the executor.

Launch is write-ahead: a task is committed in STAGING when it is accepted, committed again in
STARTING with its agent, ports and sandbox before the executor is asked to spawn it (spawning
is idempotent by task id), and its pid is recorded after. Exits are committed before the
executor is told to forget them. :mod:`dshell_local.recovery` rebuilds this state after a
restart; :mod:`dshell_local.submit` validates and builds new tasks.
"""

from __future__ import annotations

import asyncio
import logging
import signal as signals
import time
from collections.abc import Coroutine
from typing import Any

import msgspec

from dshell.errors import ConflictError, NotFoundError, TimeoutExpired
from dshell.model import PortMapping, Resources, RunSpec, Task, TaskState

from . import submit as submitting
from .allocator import Allocator, Grant
from .config import EngineConfig
from .crash import CrashPoints
from .events import EventBus
from .execport import ExecutorError, ExecutorPort, ExitReport, SpawnSpec, Spawned
from .framework import MetaFramework
from .ids import IdGenerator
from .sandbox import Sandboxes, SandboxError
from .state import Store
from .tasks import (
    REASON_KILLED,
    REASON_LAUNCH,
    REASON_SANDBOX,
    REASON_WAITING,
    TaskRecord,
    encode_record,
    exit_outcome,
    process_env,
    task_env,
    transition,
)

log = logging.getLogger(__name__)


class Engine:
    """All task state lives here; every method runs on the event loop."""

    def __init__(
        self,
        cfg: EngineConfig,
        store: Store,
        executor: ExecutorPort,
        sandboxes: Sandboxes,
        crash: CrashPoints | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.executor = executor
        self.sandboxes = sandboxes
        self.crash = crash or CrashPoints(None)
        self.records: dict[str, TaskRecord] = {}
        self.allocator = Allocator(cfg.agents, cfg.roles)
        self.framework = MetaFramework()
        self.bus = EventBus(store, cfg.engine.event_retention)
        store.on_rollback(self.bus.rollback)
        self.ids = IdGenerator()
        last = store.last_task_id()
        if last:
            self.ids.observe(last)
        self._waiters: dict[str, list[asyncio.Future[Task]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._cycle_pending = False
        self._reap: list[str] = []
        self._reaping = False
        executor.on_exit(self.handle_exit)

    # ---- plumbing -------------------------------------------------------------------------

    def spawn_bg(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg_done)

    def _bg_done(self, task: asyncio.Task[Any]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def save(self, rec: TaskRecord, event: str | None = "TASK_UPDATED") -> None:
        """Write the record (and an event) into the current transaction."""
        data, runtime = encode_record(rec)
        self.store.put_task(
            rec.task.id, rec.task.state.active, rec.rt.idem_key, data, runtime
        )
        if event:
            self.bus.publish(event, rec.task)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._bg):
            task.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)

    # ---- queries --------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        rec = self.records.get(task_id)
        if rec is not None:
            return rec.task
        data = self.store.task_json(task_id)
        if data is None:
            raise NotFoundError(f"no task {task_id!r}")
        return msgspec.json.decode(data, type=Task)

    def active(self) -> list[Task]:
        return [rec.task for rec in self.records.values()]

    # ---- submission -----------------------------------------------------------------------

    async def submit(self, spec: RunSpec) -> tuple[list[Task], bool]:
        """Accept ``spec``: the new tasks (True), or those of its idempotency key (False)."""
        if spec.idempotency_key:
            existing = self.store.ids_for_key(spec.idempotency_key)
            if existing:
                return [self.get(t) for t in existing], False
        recs = submitting.build(spec, self.ids, self.allocator, self.sandboxes)
        for rec in recs:
            self.records[rec.task.id] = rec
            self.save(rec, "TASK_ADDED")
            self.framework.add(rec.task.id, rec.task.role or "*", rec.task.resources)
        await self.store.commit()
        self.request_cycle()
        return [rec.task for rec in recs], True

    # ---- the offer cycle and launching ----------------------------------------------------

    def request_cycle(self) -> None:
        if not self._cycle_pending:
            self._cycle_pending = True
            asyncio.get_running_loop().call_soon(self._cycle)

    def _cycle(self) -> None:
        self._cycle_pending = False
        grants = self.allocator.cycle([self.framework])
        starting = [rec for rec in (self._prepare(g) for g in grants) if rec is not None]
        changed = self._update_waiting()
        if starting:
            self.spawn_bg(self._launch(starting))
        elif changed:
            self.spawn_bg(self.store.commit())

    def _update_waiting(self) -> bool:
        messages: dict[tuple[float, ...], str] = {}
        changed = False
        for task_id, res in self.framework.waiting():
            key = (res.cpus, res.mem, res.disk, res.ports, res.gpus)
            if key not in messages:
                messages[key] = self.allocator.explain(res)
            rec = self.records[task_id]
            if rec.task.message != messages[key]:
                rec.task.message = messages[key]
                rec.task.reason = REASON_WAITING
                self.save(rec, None)
                changed = True
        return changed

    def _prepare(self, grant: Grant) -> TaskRecord | None:
        rec = self.records[grant.task_id]
        task = rec.task
        task.agent_id, task.hostname = grant.agent_id, grant.hostname
        names = submitting.port_names(task)
        task.ports = [
            PortMapping(names[i] if i < len(names) else None, p) for i, p in enumerate(grant.ports)
        ]
        try:
            sandbox = self.sandboxes.create(task.id)
        except SandboxError as exc:
            self._fail_launch(rec, REASON_SANDBOX, str(exc))
            return None
        task.sandbox = str(sandbox)
        task.env = task_env(task, task.sandbox, names, grant.ports, task.env)
        transition(task, TaskState.STARTING)
        self.save(rec)
        return rec

    def _fail_launch(self, rec: TaskRecord, reason: str, message: str) -> None:
        transition(rec.task, TaskState.FAILED, reason=reason, message=message)
        self.save(rec)
        self._finalize(rec, spawned=False)

    def spawn_spec(self, rec: TaskRecord) -> SpawnSpec:
        task = rec.task
        sandbox = task.sandbox or str(self.sandboxes.path(task.id))
        limits: dict[str, float] = {"pids": float(self.cfg.engine.pids_limit)}
        if task.resources.mem > 0:
            limits["mem_mb"] = task.resources.mem
        if task.resources.cpus > 0:
            limits["cpus"] = task.resources.cpus
        return SpawnSpec(
            task_id=task.id,
            argv=list(task.command),
            shell=task.shell,
            env=process_env(task.env),
            cwd=sandbox,
            stdout=f"{sandbox}/stdout",
            stderr=f"{sandbox}/stderr",
            limits=limits,
            tty=rec.rt.tty,
        )

    async def _launch(self, recs: list[TaskRecord]) -> None:
        await self.store.commit()  # the write-ahead record of every launch below
        self.crash.hit("after_commit")
        try:
            results: list[Spawned | ExecutorError] = await self.executor.spawn_batch(
                [self.spawn_spec(rec) for rec in recs]
            )
        except ExecutorError as exc:
            results = [exc] * len(recs)
        self.crash.hit("after_spawn")
        for rec, result in zip(recs, results, strict=True):
            self._launched(rec, result)
        await self.store.commit()

    def _launched(self, rec: TaskRecord, result: Spawned | ExecutorError) -> None:
        task = rec.task
        if task.state.terminal:
            if isinstance(result, Spawned) and task.pid is None:
                task.pid = result.pid
                self.save(rec, None)
            return
        if isinstance(result, ExecutorError):
            self._fail_launch(rec, REASON_LAUNCH, str(result))
            return
        task.pid = result.pid
        rec.rt.start_time = result.start_time
        if task.state is TaskState.STARTING:
            transition(task, TaskState.RUNNING)
            self.save(rec)
        elif task.state is TaskState.KILLING:  # killed while it was being spawned
            self.save(rec, None)
            self.spawn_bg(self._terminate(rec))

    # ---- exits ----------------------------------------------------------------------------

    def handle_exit(self, report: ExitReport) -> None:
        """The executor reports an exit (unsolicited event, or found during recovery)."""
        rec = self.records.get(report.task_id)
        if rec is None or rec.task.sandbox is None:
            self._queue_reap(report.task_id)  # already recorded, or not ours: just forget it
            return
        task = rec.task
        if report.pid is not None and task.pid is None:
            task.pid = report.pid
        if task.state is TaskState.STARTING:
            transition(task, TaskState.RUNNING)
            self.save(rec)
        state, reason, message = exit_outcome(
            task.state, report.exit_code, report.signal, report.oom, report.lost
        )
        task.exit_code, task.signal = report.exit_code, report.signal or None
        transition(task, state, reason=reason, message=message)
        self.save(rec)
        self._finalize(rec, spawned=True)

    def _finalize(self, rec: TaskRecord, *, spawned: bool) -> None:
        """A task became terminal: free its resources, wake its waiters, reap it."""
        task_id = rec.task.id
        self.records.pop(task_id, None)
        self.framework.remove(task_id)
        self.allocator.release(task_id)
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        for fut in self._waiters.pop(task_id, []):
            if not fut.done():
                fut.set_result(rec.task)
        if spawned:
            self._queue_reap(task_id)
        else:
            self.allocator.free_ports(task_id)
        self.request_cycle()

    def _queue_reap(self, task_id: str) -> None:
        self._reap.append(task_id)
        if not self._reaping:
            self._reaping = True
            self.spawn_bg(self._reaper())

    async def _reaper(self) -> None:
        """After the exits are durable: empty the cgroups, free the ports, ack the executor."""
        try:
            while self._reap:
                batch, self._reap = self._reap, []
                await self.store.commit()
                await asyncio.gather(*(self._sweep(t) for t in batch))
                for task_id in batch:
                    self.allocator.free_ports(task_id)
                try:
                    await self.executor.ack(batch)
                except ExecutorError as exc:
                    log.warning("ack failed: %s", exc)
        finally:
            self._reaping = False

    async def _sweep(self, task_id: str) -> None:
        try:
            await self.executor.sweep(task_id)
        except ExecutorError as exc:
            log.warning("sweep %s failed: %s", task_id, exc)

    # ---- kill and signal ------------------------------------------------------------------

    def _active(self, task_id: str) -> TaskRecord | None:
        rec = self.records.get(task_id)
        if rec is None:
            self.get(task_id)  # NotFoundError if it never existed
        return rec

    async def kill(self, task_id: str, grace: float | None = None) -> Task:
        """SIGTERM to the task's session, ``grace`` seconds, then SIGKILL to its cgroup."""
        rec = self._active(task_id)
        if rec is None:
            return self.get(task_id)
        task = rec.task
        if task.state is TaskState.KILLING:
            return task
        if task.state is TaskState.STAGING:
            self.framework.remove(task_id)
            transition(task, TaskState.KILLED, reason=REASON_KILLED, message="killed before launch")
            self.save(rec)
            self._finalize(rec, spawned=False)
            await self.store.commit()
            return task
        rec.rt.grace = self.cfg.engine.kill_grace if grace is None else max(0.0, grace)
        rec.rt.kill_deadline = time.time() + rec.rt.grace
        transition(task, TaskState.KILLING, reason=REASON_KILLED)
        self.save(rec)
        await self.store.commit()
        if task.pid is not None:  # else the launch path terminates it once spawned
            await self._terminate(rec)
        return task

    async def _terminate(self, rec: TaskRecord) -> None:
        try:
            await self.executor.signal(rec.task.id, signals.SIGTERM)
        except ExecutorError as exc:
            log.warning("SIGTERM to %s failed: %s", rec.task.id, exc)
        self.crash.hit("while_killing")
        self.arm_kill_timer(rec)

    def arm_kill_timer(self, rec: TaskRecord) -> None:
        delay = max(0.0, (rec.rt.kill_deadline or 0.0) - time.time())
        task_id = rec.task.id
        loop = asyncio.get_running_loop()
        self._timers[task_id] = loop.call_later(
            delay, lambda: self.spawn_bg(self._escalate(task_id))
        )

    async def _escalate(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        if task_id in self.records:
            await self._sweep(task_id)

    async def signal(self, task_id: str, sig: int) -> Task:
        """Send one signal to a running task."""
        rec = self._active(task_id)
        if rec is None or rec.task.pid is None:
            raise ConflictError(f"task {task_id} is not running ({self.get(task_id).state})")
        try:
            await self.executor.signal(task_id, sig)
        except ExecutorError as exc:
            raise ConflictError(f"cannot signal {task_id}: {exc}") from exc
        return rec.task

    async def wait(self, task_id: str, timeout: float | None) -> Task:
        """The task once it is terminal; TimeoutExpired after ``timeout`` seconds."""
        rec = self._active(task_id)
        if rec is None:
            return self.get(task_id)
        fut: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise TimeoutExpired(f"task {task_id} still {rec.task.state} after {timeout}s") from None

    async def kill_all(self, grace: float | None = None) -> None:
        """Kill every active task and wait until each is recorded as ended."""
        ids = list(self.records)
        await asyncio.gather(*(self.kill(t, grace) for t in ids))
        for task_id in ids:
            if task_id in self.records:
                await self.wait(task_id, None)

    def used_by_agent(self, usage: dict[str, tuple[float, float]]) -> dict[str, Resources]:
        """Per agent: cores and MiB in use, from per-task (cpu cores, rss MiB)."""
        used: dict[str, Resources] = {}
        for task_id, (cores, rss) in usage.items():
            rec = self.records.get(task_id)
            if rec is None or rec.task.agent_id is None:
                continue
            cur = used.setdefault(rec.task.agent_id, Resources())
            cur.cpus += cores
            cur.mem += rss
        return used
