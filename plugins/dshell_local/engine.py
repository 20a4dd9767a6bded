"""The engine: tasks from submission to their recorded end, over the master and the executor.

Launch is write-ahead: a task is committed in STAGING when it is accepted, committed again in
STARTING with its agent, ports and sandbox before the executor is asked to spawn it (spawning
is idempotent by task id), and its pid is recorded after. Exits are committed before the
executor is told to forget them. :mod:`dshell_local.recovery` rebuilds this state after a
restart; :mod:`dshell_local.submit` validates and builds new tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signals
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from dshell.errors import ConflictError, NotFoundError, TimeoutExpired
from dshell.model import RunSpec, Task, TaskState

from . import constraints as placement
from . import launching
from . import submit as submitting
from .allocator import DEFAULT_ROLE, Allocator, Grant
from .config import EngineConfig
from .crash import CrashPoints
from .events import EventBus
from .execport import ExecutorError, ExecutorPort, ExitReport, Spawned
from .framework import MetaFramework
from .ids import IdGenerator
from .preemptor import Preemptor
from .quotas import RoleController
from .sandbox import Sandboxes
from .state import Store
from .tasks import (
    REASON_KILLED,
    REASON_LAUNCH,
    REASON_SANDBOX,
    REASON_WAITING,
    TaskRecord,
    encode_record,
    exit_outcome,
    inherited_env,
    transition,
)
from .volumes import VolumeController

log = logging.getLogger(__name__)

LAUNCH_BATCH = 64
# Sandboxes are made by this many threads at once: on a slow disk a mkdir or a file creation
# waits up to a millisecond on the journal, and concurrent ones share the wait. Not more: the
# creations of one directory's entries serialise on its lock, and with 16 threads a burst's
# threads spun on it (the kernel's optimistic spinning: ~40 % of their CPU time) and kept
# the CPUs busy with sandboxes while the executor had nothing to spawn yet; 4 cost the engine
# 150-250 ms less CPU per 1,000 launches.
FS_THREADS = 4
SANDBOX_CHUNK = 8  # sandboxes made by one file-system job (a launch batch is 64)
REFILL_IDLE = 1.0  # seconds without a launch before spare sandboxes are made again
SPAWN_ANSWER_WAIT = 30.0  # seconds a signal waits for its task's spawn to be answered


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
        self.framework = MetaFramework(placement.sites_of(self.allocator.agents.values()))
        self.framework.port_open = self.allocator.port_open
        self.framework.unavailable = self.allocator.unavailable
        self.roles = RoleController(self)
        self.preemption = Preemptor(self)  # preferred tasks taking preemptible ones' place
        self.roles.load()  # quotas, weights, reservations: before any placement
        self.volumes = VolumeController(self)
        self.volumes.load()  # persistent volumes hold their agents' disk
        self.bus = EventBus(store, cfg.engine.event_retention)
        store.on_rollback(self.bus.rollback)
        self.ids = IdGenerator()
        last = store.last_task_id()
        if last:
            self.ids.observe(last)
        self._waiters: dict[str, list[asyncio.Future[Task]]] = {}
        # the controllers (services, batch jobs), told of every saved change of a task that
        # belongs to a service or carries labels (each one picks out its own tasks)
        self.observers: list[Callable[[TaskRecord], None]] = []
        # launches handed to the executor and not yet answered: a task can already print
        # (and be signalled) before its spawn's answer is recorded
        self._spawning: dict[str, asyncio.Event] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._fs_pool = ThreadPoolExecutor(FS_THREADS, thread_name_prefix="sandbox")
        self._refilling = False
        self._refill_timer: asyncio.TimerHandle | None = None
        self._burst = 0  # sandboxes launches made since the engine was last idle
        self._cycle_pending = False
        self._reap: list[str] = []
        self._reaping = False
        self._base_env = inherited_env()
        self._ready = False  # exits reported before recovery has loaded the tasks wait here
        self._early: list[ExitReport] = []
        executor.on_exit(self.handle_exit)

    # ---- plumbing -------------------------------------------------------------------------

    def spawn_bg(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, keeping a reference and logging its failure."""
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg_done)

    def _bg_done(self, task: asyncio.Task[Any]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def refill_sandboxes(self, after: float = REFILL_IDLE) -> None:
        """Make spare sandboxes (see :mod:`dshell_local.sandbox`) once no launch has been in
        flight for ``after`` seconds, in a file-system thread (it stops while one is). Made
        during a burst of launches, spares only competed with the burst's spawns: a burst of
        1,000 measured 0.35 of raw with 256 spares made meanwhile, 0.42 with none. (The wait
        used to count from each launch's start: a burst's launches all start within ~0.2 s,
        and its spawns went on for a second more, alongside the refill.)"""
        if self._refill_timer is not None:
            self._refill_timer.cancel()
        self._refill_timer = asyncio.get_running_loop().call_later(after, self._refill)

    def _refill(self) -> None:
        self._refill_timer = None
        sandboxes = self.sandboxes
        sandboxes.grow(self._burst)  # the launches since the last idle second
        self._burst = 0
        if self._refilling or sandboxes.spare_count() >= sandboxes.spares_target:
            return
        self._refilling = True
        done = asyncio.get_running_loop().run_in_executor(self._fs_pool, sandboxes.refill)
        done.add_done_callback(self._refilled)

    def _refilled(self, done: asyncio.Future[int]) -> None:
        self._refilling = False
        if not done.cancelled() and done.exception() is not None:
            log.error("making spare sandboxes failed", exc_info=done.exception())

    def save(self, rec: TaskRecord, event: str | None = "TASK_UPDATED") -> None:
        """Write the record (and an event) into the current transaction."""
        rows = encode_record(rec)
        self.store.put_task(rec.task.id, rec.task.state.active, rec.rt.idem_key, rows)
        if event:
            self.bus.publish(event, rec.summary)
        if self.observers and (rec.task.service is not None or rec.task.labels):
            for observer in self.observers:
                observer(rec)

    async def close(self) -> None:
        """Cancel timers and background work (the tasks themselves keep running)."""
        if self._refill_timer is not None:
            self._refill_timer.cancel()
        for timer in self.timers.values():
            timer.cancel()
        for task in list(self._bg):
            task.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        self._fs_pool.shutdown(wait=False)

    # ---- queries --------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """A task by id, active (memory) or ended (database); NotFoundError if unknown."""
        rec = self.records.get(task_id)
        if rec is not None:
            return rec.task
        data = self.store.task_json(task_id)
        if data is None:
            raise NotFoundError(f"no task {task_id!r}")
        return msgspec.json.decode(data, type=Task)

    def active(self) -> list[Task]:
        """The active tasks, oldest first."""
        return [rec.task for rec in self.records.values()]

    def active_summaries(self) -> list[bytes]:
        """The active tasks' summary JSON, as last saved (cheap: nothing is encoded)."""
        return [rec.summary for rec in self.records.values()]

    # ---- submission -----------------------------------------------------------------------

    async def submit(self, spec: RunSpec, *, templates: bool = False) -> tuple[list[Task], bool]:
        """Accept ``spec``: the new tasks (True), or those of its idempotency key (False).
        ``templates``: render Aurora-style templates in the command once ports are known."""
        if spec.idempotency_key:
            existing = self.store.ids_for_key(spec.idempotency_key)
            if existing:
                return [self.get(t) for t in existing], False
        recs = submitting.build(spec, self.ids, self.allocator, templates=templates)
        self.volumes.claim(spec, recs)  # their volumes' agent, or an error naming the volume
        need = placement.need_of(recs[0])  # one group and constraints per submission
        for rec in recs:
            self.records[rec.task.id] = rec
            self.save(rec, "TASK_ADDED")
            self.framework.add(rec.task.id, rec.task.role or DEFAULT_ROLE, rec.task.resources, need)
        await self.store.commit()
        self.request_cycle()
        return [rec.task for rec in recs], True

    # ---- the offer cycle and launching ----------------------------------------------------

    def request_cycle(self) -> None:
        """Run an offer cycle soon (once per loop pass, however often it is asked)."""
        if not self._cycle_pending:
            self._cycle_pending = True
            asyncio.get_running_loop().call_soon(self._cycle)

    def _cycle(self) -> None:
        self._cycle_pending = False
        grants = self.preemption.place_ready()  # first: what their victims left is theirs
        grants += self.allocator.cycle([self.framework])
        preempting = self.preemption.select()
        changed = self._update_waiting() or preempting
        if grants:
            self._launch_granted(grants)
        elif changed:
            self.spawn_bg(self.store.commit())

    def _launch_granted(self, grants: list[Grant]) -> None:
        """Prepare (STARTING) and launch the first ``LAUNCH_BATCH`` of ``grants``; the rest
        follow in later loop passes, a batch at a time.

        Pipelined: preparing a task (its place, environment and saved record) costs the loop
        ~50-100 µs, so preparing a burst of 1,000 before launching any kept the executor idle
        for the first ~100 ms of it; this way the first batch's sandboxes are being made (in
        the file-system threads) and its spawns are under way while the next batch is
        prepared. A granted task killed before its turn has ended meanwhile (its resources
        were released then) and is skipped."""
        batch, rest = grants[:LAUNCH_BATCH], grants[LAUNCH_BATCH:]
        starting = [
            self._prepare(g)
            for g in batch
            if (rec := self.records.get(g.task_id)) is not None
            and rec.task.state is TaskState.STAGING
        ]
        if starting:  # its first step (the sandboxes) runs before the next batch is prepared
            self.spawn_bg(self.launch(starting))
        if rest:
            asyncio.get_running_loop().call_soon(self._launch_granted, rest)

    def _update_waiting(self) -> bool:
        changed = False
        role_of = self.framework.role_of
        waiting = launching.waiting_messages(self.framework.waiting(), self.allocator, role_of)
        agents = self.allocator.agents
        for task_id, message in self.framework.placement_messages(
            lambda a: agents[a].free()
        ).items():
            role = role_of(task_id)
            if role is None or not waiting.get(task_id, "").startswith(f"role {role}: quota"):
                waiting[task_id] = message
        for task_id, message in waiting.items():
            rec = self.records[task_id]
            if rec.task.message != message:
                rec.task.message, rec.task.reason = message, REASON_WAITING
                self.save(rec, None)
                changed = True
        return changed

    def _prepare(self, grant: Grant) -> TaskRecord:
        rec = self.records[grant.task_id]
        launching.place(rec, grant, self.sandboxes)
        self.save(rec)
        return rec

    def _fail_launch(self, rec: TaskRecord, reason: str, message: str) -> None:
        transition(rec.task, TaskState.FAILED, reason=reason, message=message)
        self.save(rec)
        self.finalize(rec, spawned=False)

    async def launch(self, recs: list[TaskRecord]) -> None:
        """Spawn STARTING tasks once their sandboxes exist and their write-ahead record is
        committed (relaunches after a crash come through here too). No spare sandboxes are
        made while a launch is in flight, and they are made once none has been for a while."""
        self._burst += len(recs)
        try:
            with self.sandboxes.making():
                await self._launch(recs)
        finally:
            self.refill_sandboxes()

    async def _launch(self, recs: list[TaskRecord]) -> None:
        loop = asyncio.get_running_loop()
        # spare sandboxes are renamed into place here (see Sandboxes.take_spare); the others
        # are made off the loop and in parallel, a few per job: one job per task cost the
        # loop ~150 µs each in the pool's locks, which its threads contend
        making = [
            rec for rec in recs if rec.rt.workdir or not self.sandboxes.take_spare(rec.task.id)
        ]
        chunks = [making[i : i + SANDBOX_CHUNK] for i in range(0, len(making), SANDBOX_CHUNK)]
        made = await asyncio.gather(
            *(
                loop.run_in_executor(self._fs_pool, launching.make_sandboxes, chunk, self.sandboxes)
                for chunk in chunks
            )
        )
        errors = [err for chunk_errors in made for err in chunk_errors]
        failed = {rec.task.id: err for rec, err in zip(making, errors, strict=True) if err}
        for rec in recs:
            if rec.task.id in failed and rec.task.state.active:
                self._fail_launch(rec, REASON_SANDBOX, failed[rec.task.id])
        recs = [rec for rec in recs if rec.task.id not in failed]
        await self.store.commit()  # the write-ahead record of every launch below
        self.crash.hit("after_commit")
        limit = self.cfg.engine.pids_limit
        specs = [
            self.volumes.spawn_spec(rec, launching.spawn_spec(rec, limit, self._base_env))
            for rec in recs
        ]
        pending = asyncio.Event()
        for rec in recs:
            self._spawning[rec.task.id] = pending
        try:
            results: list[Spawned | ExecutorError] = await self.executor.spawn_batch(specs)
        except ExecutorError as exc:
            results = [exc] * len(recs)
        finally:
            for rec in recs:
                self._spawning.pop(rec.task.id, None)
            pending.set()
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

    def set_ready(self) -> None:
        """Recovery is done: handle the exits reported meanwhile, then every new one."""
        self.framework.restore(self.records.values())  # before any exit
        self._ready = True
        early, self._early = self._early, []
        for report in early:
            self.handle_exit(report)

    # ---- exits ----------------------------------------------------------------------------

    def handle_exit(self, report: ExitReport) -> None:
        """The executor reports an exit (unsolicited event, or found during recovery)."""
        if not self._ready:
            self._early.append(report)
            return
        self.apply_exit(report)

    def apply_exit(self, report: ExitReport) -> None:
        """Record an exit now (recovery calls this before the engine is ready)."""
        rec = self.records.get(report.task_id)
        if rec is None:
            self.queue_reap(report.task_id)  # already recorded, or not ours: just forget it
            return
        if rec.task.sandbox is None:
            log.error("exit reported for %s, which was never launched", report.task_id)
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
        if state is TaskState.KILLED and rec.rt.kill_cause:
            reason = rec.rt.kill_cause
            message = f"{message} ({rec.rt.kill_note})" if rec.rt.kill_note else message
        transition(task, state, reason=reason, message=message)
        self.save(rec)
        self.finalize(rec, spawned=True)

    def finalize(self, rec: TaskRecord, *, spawned: bool) -> None:
        """A task became terminal: free its resources, wake its waiters, reap it."""
        task_id = rec.task.id
        self.records.pop(task_id, None)
        self.framework.remove(task_id)
        self.preemption.ending(task_id)  # before the release: a victim's share stays held
        self.allocator.release(task_id)
        timer = self.timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        for fut in self._waiters.pop(task_id, []):
            if not fut.done():
                fut.set_result(rec.task)
        if spawned:
            self.queue_reap(task_id)
        else:
            self.allocator.free_ports(task_id)
        self.request_cycle()

    def queue_reap(self, task_id: str) -> None:
        """Ack an ended task to the executor (batched, after its end is committed)."""
        self._reap.append(task_id)
        if not self._reaping:
            self._reaping = True
            self.spawn_bg(self._reaper())

    async def _reaper(self) -> None:
        """After the exits are durable: ack them (the executor destroys their cgroups, killing
        any process left), then free their ports."""
        try:
            while self._reap:
                batch, self._reap = self._reap, []
                await self.store.commit()
                try:
                    await self.executor.ack(batch)
                except ExecutorError as exc:
                    log.warning("ack failed: %s", exc)
                    continue  # ports stay held: their processes may still be there
                for task_id in batch:
                    self.allocator.free_ports(task_id)
        finally:
            self._reaping = False

    async def sweep(self, task_id: str) -> None:
        """SIGKILL everything in the task's cgroup until it is empty (errors are logged)."""
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

    async def kill(
        self,
        task_id: str,
        grace: float | None = None,
        cause: tuple[str, str] | None = None,
    ) -> Task:
        """SIGTERM to the task's session, ``grace`` seconds, then SIGKILL to its cgroup.
        ``cause``: (end reason, why) of a kill that is not a user's (an agent's drain)."""
        rec = self._active(task_id)
        if rec is None:
            return self.get(task_id)
        task = rec.task
        if task.state is TaskState.KILLING:
            if grace is not None and task.pid is not None:  # a shorter deadline wins
                deadline = time.time() + max(0.0, grace)
                if rec.rt.kill_deadline is None or deadline < rec.rt.kill_deadline:
                    rec.rt.kill_deadline = deadline
                    self.save(rec, None)
                    old = self.timers.pop(task_id, None)
                    if old is not None:
                        old.cancel()
                    self.arm_kill_timer(rec)
            return task
        if cause is not None:
            rec.rt.kill_cause, rec.rt.kill_note = cause
        if task.state is TaskState.STAGING:
            self.framework.remove(task_id)
            transition(task, TaskState.KILLED, reason=REASON_KILLED, message="killed before launch")
            self.save(rec)
            self.finalize(rec, spawned=False)
            await self.store.commit()
            return task
        rec.rt.grace = self.cfg.engine.kill_grace if grace is None else max(0.0, grace)
        rec.rt.kill_deadline = time.time() + rec.rt.grace
        transition(task, TaskState.KILLING, reason=rec.rt.kill_cause or REASON_KILLED)
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
        """Sweep the task when its kill deadline passes."""
        delay = max(0.0, (rec.rt.kill_deadline or 0.0) - time.time())
        task_id = rec.task.id
        loop = asyncio.get_running_loop()
        self.timers[task_id] = loop.call_later(
            delay, lambda: self.spawn_bg(self._escalate(task_id))
        )

    async def _escalate(self, task_id: str) -> None:
        self.timers.pop(task_id, None)
        if task_id in self.records:
            await self.sweep(task_id)

    async def spawned(self, task_id: str) -> TaskRecord | None:
        """The active record of ``task_id`` once its spawn (if in flight) is answered."""
        spawning = self._spawning.get(task_id)
        if spawning is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spawning.wait(), SPAWN_ANSWER_WAIT)
        return self._active(task_id)

    async def signal(self, task_id: str, sig: int) -> Task:
        """Send one signal to a running task (one whose spawn is in flight is waited for:
        it may already have printed, so to its user it is running)."""
        rec = await self.spawned(task_id)
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
            raise TimeoutExpired(
                f"task {task_id} still {rec.task.state} after {timeout}s"
            ) from None

    async def kill_all(self, grace: float | None = None) -> None:
        """Kill every active task and wait until each is recorded as ended (bounded: a task
        whose end the executor never reports is left as it is)."""
        ids = list(self.records)
        await asyncio.gather(*(self.kill(t, grace) for t in ids))
        bound = (self.cfg.engine.kill_grace if grace is None else grace) + 30.0
        pending = [self.wait(t, bound) for t in ids if t in self.records]
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("kill_all: %s", result)
