"""The batch jobs controller: retries, schedules and pipelines on the embedded engine
(the role of Chronos, Metronome and Cook).

A job is a command with optional schedules (cron or ISO 8601, :mod:`dshell_local.schedules`)
and optional parents. Each *run* of a job launches one engine task per attempt, labelled
``dshell.job``, ``dshell.job.run`` and ``dshell.job.attempt``, so runs are ordinary tasks
(``ps``, sandboxes under ``/local/tasks/``).

Durability (write-ahead, as for tasks): a run is recorded, with the number of its next
attempt, and committed before that attempt's task is submitted; the submission carries the
idempotency key ``job:<name>:<run>:<attempt>``, so after a crash anywhere in between the
restarted controller submits again and gets the task that exists, or launches the one that
does not: a run is never launched twice nor lost. What the controller learns from the engine
(a task started or ended) is written inside the engine's own save of that task, in the same
transaction. Schedules advance in the same commit as the run they create.

* **schedules**: when a schedule is due the controller applies the missed-run rule (a run
  later than ``starting_deadline`` is SKIPPED and recorded; at most one catch-up run after
  downtime) and the concurrency policy (ALLOW, FORBID: SKIPPED, REPLACE: the active runs are
  killed first). A paused job lets its due times pass without runs.
* **retries**: a failed or timed-out attempt is retried ``retries`` times (-1: until it
  succeeds, within ``retry_deadline``) after ``seconds * factor^(attempt-1)`` (capped at
  ``max_launch_delay``); an attempt running longer than ``timeout`` is killed with the job's
  kill grace period and the run ends TIMED_OUT.
* **pipelines** (Chronos): a job with parents runs once each of them has had a successful
  run since its own last run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from dshell.errors import ConflictError, DshellError, NotFoundError, UsageError
from dshell.model import Job, RunSpec, Task, TaskState

from . import schedules
from .jobapi import JobCall, JobCreate
from .jobrecs import JobRec, RunRec, job_view
from .state import StoreError
from .tasks import REASON_DRAINING, REASON_KILLED, TaskRecord, utcnow

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

JOB_LABEL = "dshell.job"
RUN_LABEL = "dshell.job.run"
ATTEMPT_LABEL = "dshell.job.attempt"
CLOCK_ENV = "DSHELL_ENGINE_CLOCK"  # tests only: see clock_from_env
MAX_SLEEP = 30.0  # the loop looks at the clock at least this often (a wall clock may jump)
TEST_SLEEP = 0.05  # ... and this often on a test clock
KEEP_RUNS = 1000  # finished runs kept per job


def clock_from_env() -> tuple[Callable[[], float], float]:
    """The controller's clock and its longest sleep.

    Tests only: ``DSHELL_ENGINE_CLOCK=/path/file`` makes "now" what the file says, read at
    every look: ``+N``/``-N`` is an offset in seconds from the real time, a plain number an
    absolute epoch time (unreadable: the real time). Like the crash points it is never set
    in normal runs.
    """
    path = os.environ.get(CLOCK_ENV)
    if not path:
        return time.time, MAX_SLEEP
    file = Path(path)

    def now() -> float:
        try:
            text = file.read_text().strip()
            if text[:1] in "+-":
                return time.time() + float(text)
            return float(text)
        except (OSError, ValueError, IndexError):
            return time.time()

    return now, TEST_SLEEP


def _loop_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the jobs controller stopped", exc_info=task.exception())


class JobController:
    """Schedules, launches, retries and records the runs of batch jobs."""

    def __init__(
        self, engine: Engine, clock: Callable[[], float] = time.time, max_sleep: float = MAX_SLEEP
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.max_sleep = max_sleep
        self.jobs: dict[str, JobRec] = {}
        self.children: dict[str, set[str]] = {}  # job -> the jobs that run after it
        self._todo: set[tuple[str, int]] = set()  # runs whose next attempt is to be launched
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._started = False
        engine.observers.append(self._observe)

    # ---- start-up -------------------------------------------------------------------------

    def load(self) -> None:
        """Read the jobs (before the engine's recovery reconciles: exits found then are
        told to ``_observe``)."""
        for data in self.engine.store.jobs():
            rec = msgspec.json.decode(data, type=JobRec)
            self.jobs[rec.name] = rec
        self.index()

    def start(self) -> None:
        """After recovery: resume every active run, then start the loop."""
        for rec in list(self.jobs.values()):
            for run in list(rec.active.values()):
                self._resume(rec, run)
        self._started = True
        self._loop_task = asyncio.ensure_future(self._loop())
        self._loop_task.add_done_callback(_loop_ended)
        self._wake.set()

    def _resume(self, rec: JobRec, run: RunRec) -> None:
        """An active run after a restart: relaunch (idempotently), wait, or record its end."""
        if run.state in ("PENDING", "STARTING") and run.task_id is None:
            self._todo.add((rec.name, run.n))
            return
        if run.state == "RETRYING":
            self._arm_retry(rec, run)
            return
        if run.task_id is None:
            return
        if run.task_id in self.engine.records:
            task_rec = self.engine.records[run.task_id]
            if task_rec.task.state is TaskState.RUNNING:
                self._arm_timeout(rec, run)
            return
        try:
            task = self.engine.get(run.task_id)
        except NotFoundError:  # never happens with a consistent database: say so, never rerun
            self._finish(rec, run, "FAILED", f"its task {run.task_id} is unknown to the engine")
            return
        self._attempt_ended(rec, run, task)  # it ended while nobody was listening

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for timer in self._timers.values():
            timer.cancel()

    def index(self) -> None:
        self.children = {}
        for rec in self.jobs.values():
            for parent in rec.spec.after:
                self.children.setdefault(parent, set()).add(rec.name)

    # ---- persistence ------------------------------------------------------------------------

    def save(self, rec: JobRec) -> None:
        if rec.name in self.jobs:
            self.engine.store.put_job(rec.name, msgspec.json.encode(rec))

    def _record_run(self, run: RunRec) -> None:
        self.engine.store.put_job_run(run.job, run.n, msgspec.json.encode(run))

    def finished_runs(self, name: str, limit: int | None) -> list[RunRec]:
        return [
            msgspec.json.decode(d, type=RunRec) for d in self.engine.store.job_runs(name, limit)
        ]

    # ---- what the engine tells us ---------------------------------------------------------

    def _observe(self, task_rec: TaskRecord) -> None:
        """Every save of a labelled task (inside the engine's save: same transaction)."""
        task = task_rec.task
        name = task.labels.get(JOB_LABEL)
        if name is None:
            return
        rec = self.jobs.get(name)
        try:
            n, attempt = int(task.labels[RUN_LABEL]), int(task.labels[ATTEMPT_LABEL])
        except (KeyError, ValueError):
            return
        run = rec.active.get(n) if rec is not None else None
        if rec is None or run is None or run.attempt != attempt:
            return  # a stale attempt, or a job removed meanwhile
        changed = False
        if run.task_id != task.id:
            run.task_id = task.id
            run.tasks.append(task.id)
            changed = True
        if task.state is TaskState.RUNNING and run.state != "RUNNING":
            run.state = "RUNNING"
            run.attempt_start = time.time()
            if run.first_start is None:
                run.first_start = run.attempt_start
                run.started_at = task.started_at or utcnow()
            if self._started:
                self._arm_timeout(rec, run)
            changed = True
        if task.state.terminal:
            self._attempt_ended(rec, run, task)
        elif changed:
            self.save(rec)

    def _attempt_ended(self, rec: JobRec, run: RunRec, task: Task) -> None:
        self._cancel_timer((rec.name, run.n))
        run.exit_code, run.signal = task.exit_code, task.signal
        if run.started_at is None:
            run.started_at = task.started_at
        if task.state is TaskState.FINISHED:
            self._finish(rec, run, "SUCCESS", None)
            return
        if run.kill_reason in ("killed", "replaced"):
            why = "killed by a user" if run.kill_reason == "killed" else "replaced by a newer run"
            self._finish(rec, run, "KILLED", why)
            return
        if task.reason == REASON_DRAINING and run.kill_reason is None:
            # its agent was drained: like a lost attempt, run again elsewhere at once, and
            # not counted against the job's retries (the job did not fail)
            run.drained += 1
            run.state, run.task_id = "RETRYING", None
            run.retry_at = time.time()
            run.message = f"attempt {run.attempt} killed by a drain: {task.message}; again"
            self.save(rec)
            if self._started:
                self._arm_retry(rec, run)
            return
        if run.kill_reason == "timeout":
            outcome, why = "TIMED_OUT", f"timed out after {rec.spec.timeout:g}s (killed)"
        elif task.reason == REASON_KILLED:
            self._finish(rec, run, "KILLED", f"its task was killed ({task.id})")
            return
        else:
            outcome, why = "FAILED", task.message or f"{task.state.value}"
        if self._may_retry(rec, run):
            delay = self._backoff(rec, run.attempt)
            run.state, run.kill_reason, run.task_id = "RETRYING", None, None
            run.retry_at = time.time() + delay
            run.message = f"attempt {run.attempt} {outcome.lower()}: {why}; retry in {delay:.2g}s"
            self.save(rec)
            if self._started:
                self._arm_retry(rec, run)
            return
        self._finish(rec, run, outcome, why)

    def _may_retry(self, rec: JobRec, run: RunRec) -> bool:
        spec = rec.spec
        if spec.retries != -1 and run.attempt - run.drained > spec.retries:
            return False
        deadline = spec.retry_deadline
        if deadline is None or run.first_start is None:
            return True
        return time.time() - run.first_start < deadline

    @staticmethod
    def _backoff(rec: JobRec, attempt: int) -> float:
        back = rec.spec.retry_backoff
        return float(min(back.max_launch_delay, back.seconds * back.factor ** (attempt - 1)))

    def _finish(self, rec: JobRec, run: RunRec, state: str, message: str | None) -> None:
        """A run is over: out of the record into the history; counts; children."""
        self._cancel_timer((rec.name, run.n))
        self._todo.discard((rec.name, run.n))
        run.state, run.message = state, message
        run.finished_at = utcnow()
        if run.first_start is not None:
            run.duration = round(time.time() - run.first_start, 3)
        rec.active.pop(run.n, None)
        if state == "SUCCESS":
            rec.success_count += 1
            rec.last_success = run.finished_at
        elif state in ("FAILED", "TIMED_OUT"):
            rec.error_count += 1
            rec.last_failure = run.finished_at
        self._record_run(run)
        if run.n % 100 == 0:
            self.engine.store.trim_job_runs(rec.name, KEEP_RUNS)
        self.save(rec)
        log.info("job %s: run %d %s%s", rec.name, run.n, state, f" ({message})" if message else "")
        if state == "SUCCESS":
            self._parent_succeeded(rec.name)
        self._wake.set()

    def _parent_succeeded(self, name: str) -> None:
        """Chronos: a child runs once every parent succeeded since its own last run."""
        for child_name in sorted(self.children.get(name, ())):
            child = self.jobs.get(child_name)
            if child is None:
                continue
            if name not in child.parents_ok:
                child.parents_ok.append(name)
            if set(child.spec.after) <= set(child.parents_ok) and not child.paused:
                child.parents_ok = []
                self.new_run(child, "parents")
            self.save(child)

    # ---- runs -----------------------------------------------------------------------------

    def new_run(self, rec: JobRec, cause: str, due: float | None = None) -> RunRec:
        """A run of ``rec`` (written, not committed), after the concurrency policy."""
        n = rec.next_run
        rec.next_run += 1
        run = RunRec(job=rec.name, n=n, cause=cause, due=due)
        decision = schedules.concurrency(rec.policy, len(rec.active)) if cause != "manual" else ""
        if decision == "skip":
            run.state, run.finished_at = "SKIPPED", utcnow()
            run.message = f"run {max(rec.active)} still active (concurrency policy FORBID)"
            self._record_run(run)
            self.save(rec)
            return run
        if decision == "replace":
            for old in list(rec.active.values()):
                self.kill_run(rec, old, "replaced")
        rec.active[n] = run
        self._todo.add((rec.name, n))
        self.save(rec)
        self._wake.set()
        return run

    def _skip(self, rec: JobRec, due: float | None, message: str) -> None:
        n = rec.next_run
        rec.next_run += 1
        run = RunRec(job=rec.name, n=n, cause="schedule", due=due, state="SKIPPED")
        run.finished_at, run.message = utcnow(), message
        self._record_run(run)
        log.info("job %s: run %d skipped (%s)", rec.name, n, message)

    def kill_run(self, rec: JobRec, run: RunRec, reason: str) -> None:
        run.kill_reason = reason
        task_id = run.task_id
        if task_id is None or run.state in ("PENDING", "RETRYING"):
            if (rec.name, run.n) in self._todo or run.state in ("PENDING", "RETRYING"):
                why = "killed by a user" if reason == "killed" else "replaced by a newer run"
                self._finish(rec, run, "KILLED", why + " (before it started)")
            return  # STARTING: the launch path kills it once it is submitted
        self.save(rec)
        grace = rec.spec.kill_grace_period
        self.engine.spawn_bg(self._kill_task(task_id, grace))

    async def _kill_task(self, task_id: str, grace: float | None) -> None:
        with contextlib.suppress(NotFoundError, ConflictError):
            await self.engine.kill(task_id, grace)

    # ---- timers (wall clock: durations, not due times) ---------------------------------------

    def _cancel_timer(self, key: tuple[str, int]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _arm(self, key: tuple[str, int], delay: float, fire: Callable[[], None]) -> None:
        self._cancel_timer(key)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(0.0, delay), fire)

    def _arm_retry(self, rec: JobRec, run: RunRec) -> None:
        key = (rec.name, run.n)

        def fire() -> None:
            self._timers.pop(key, None)
            self._todo.add(key)
            self._wake.set()

        self._arm(key, (run.retry_at or 0.0) - time.time(), fire)

    def _arm_timeout(self, rec: JobRec, run: RunRec) -> None:
        limit = rec.spec.timeout
        if limit is None:
            return
        key, attempt = (rec.name, run.n), run.attempt
        left = limit - (time.time() - (run.attempt_start or time.time()))

        def fire() -> None:
            self._timers.pop(key, None)
            job = self.jobs.get(key[0])
            current = job.active.get(key[1]) if job is not None else None
            if job is None or current is None or current.attempt != attempt:
                return
            if current.state == "RUNNING" and current.kill_reason is None:
                log.info("job %s: run %d timed out after %gs", job.name, current.n, limit)
                self.kill_run(job, current, "timeout")
                self.engine.spawn_bg(self.engine.store.commit())

        self._arm(key, left, fire)

    # ---- the loop: schedules and launches ---------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                await self._tick()
            except (DshellError, OSError, StoreError, sqlite3.Error, ValueError) as exc:
                log.warning("jobs: %s", exc)  # the next pass tries again
            delay = self._sleep_for()
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    def _sleep_for(self) -> float:
        if self._todo:
            return 0.0
        now = self.clock()
        dues = [d for rec in self.jobs.values() for d in rec.next_due.values() if d is not None]
        return max(0.0, min([self.max_sleep, *(d - now for d in dues)]))

    async def _tick(self) -> None:
        now = self.clock()
        for rec in list(self.jobs.values()):
            for sched in rec.enabled():
                due = rec.next_due.get(sched.id)
                if due is not None and due <= now:
                    self._fire(rec, sched, due, now)
        if self._todo:
            await self._launch_todo()
        else:
            await self.engine.store.commit()

    def _fire(self, rec: JobRec, sched: Any, due: float, now: float) -> None:
        """The schedule's due time(s) up to ``now`` passed: the missed-run rule, then a run."""
        decision = schedules.missed(sched, due, now, rec.created, catch_up=not rec.paused)
        rec.next_due[sched.id] = decision.next
        deadline = sched.starting_deadline
        if decision.skipped:
            late = now - (decision.latest_skipped or now)
            why = f"{decision.skipped} run(s) missed"
            if decision.run_at is None:
                why += f": {late:.1f}s late, past the starting deadline of {deadline:g}s"
            else:
                why += " (at most one catch-up run)"
            self._skip(rec, decision.latest_skipped, why)
        if decision.run_at is not None:
            cause = "catch-up" if decision.skipped else "schedule"
            self.new_run(rec, cause, decision.run_at)
        self.save(rec)

    async def _launch_todo(self) -> None:
        """Launch the next attempt of every run to do: recorded and committed first."""
        batch, self._todo = sorted(self._todo), set()
        ready: list[tuple[JobRec, RunRec]] = []
        for name, n in batch:
            rec = self.jobs.get(name)
            run = rec.active.get(n) if rec is not None else None
            if rec is None or run is None:
                continue
            if run.state in ("PENDING", "RETRYING"):
                run.attempt += 1
                run.state, run.task_id, run.retry_at = "STARTING", None, None
                self.save(rec)
            if run.state == "STARTING":
                ready.append((rec, run))
        await self.engine.store.commit()
        self.engine.crash.hit("job_after_commit")
        results = await asyncio.gather(
            *(self._submit(rec, run) for rec, run in ready), return_exceptions=True
        )
        if ready:
            self.engine.crash.hit("job_after_launch")
        for (rec, run), result in zip(ready, results, strict=True):
            if isinstance(result, DshellError):
                if run.n in rec.active:
                    self._finish(rec, run, "FAILED", f"cannot launch: {result.message}")
            elif isinstance(result, BaseException):
                raise result
            elif run.kill_reason in ("killed", "replaced") and run.task_id is not None:
                self.engine.spawn_bg(self._kill_task(run.task_id, rec.spec.kill_grace_period))
        await self.engine.store.commit()

    async def _submit(self, rec: JobRec, run: RunRec) -> list[Task]:
        spec = self.runspec(rec, run)
        tasks, _new = await self.engine.submit(spec, templates=spec.templates)
        if run.task_id is None and tasks and run.n in rec.active:
            run.task_id = tasks[0].id
            run.tasks.append(tasks[0].id)
            self.save(rec)
        return tasks

    def runspec(self, rec: JobRec, run: RunRec) -> RunSpec:
        from dshell.specs.runspecs import to_runspec

        spec, _notes = to_runspec(rec.spec, rec.name)
        spec.labels.update(
            {JOB_LABEL: rec.name, RUN_LABEL: str(run.n), ATTEMPT_LABEL: str(run.attempt)}
        )
        spec.idempotency_key = f"job:{rec.name}:{run.n}:{run.attempt}"
        return spec

    # ---- verbs ----------------------------------------------------------------------------

    def get(self, name: str) -> JobRec:
        rec = self.jobs.get(name)
        if rec is None:
            raise NotFoundError(f"no job {name!r}")
        return rec

    def view(self, rec: JobRec) -> Job:
        return job_view(rec, self.finished_runs(rec.name, 10))

    def list_jobs(self) -> list[Job]:
        return [job_view(self.jobs[n], []) for n in sorted(self.jobs)]

    def wake(self) -> None:
        self._wake.set()

    def forget(self, name: str) -> None:
        """Drop a job, its timers and its pending launches (its runs are being killed)."""
        for key in [k for k in self._timers if k[0] == name]:
            self._cancel_timer(key)
        self._todo = {k for k in self._todo if k[0] != name}
        del self.jobs[name]
        self.engine.store.put_job(name, None)
        self.index()

    async def create(self, req: JobCreate) -> list[Job]:
        """Validate every job (spec, launchability, parents, cycles), then store them all."""
        from .jobverbs import create

        return await create(self, req)

    async def call(self, verb: str, req: JobCall) -> Any:
        from .jobverbs import VERBS

        handler = VERBS.get(verb)
        if handler is None:
            raise UsageError(f"unknown job verb {verb!r}")
        result = handler(self, req)
        await self.engine.store.commit()
        return result
