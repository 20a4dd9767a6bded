"""Records of the batch jobs controller (persisted in the ``jobs`` and ``job_runs`` tables),
their public views, and the validation of job specs before anything is stored.

A job's record holds its spec, its schedules' next due times, its statistics and its
*active* runs; a run leaves the record for the ``job_runs`` table once it is over. Times
named ``*_due``/``created`` are on the controller's clock (controllable in tests); the
others (attempt starts, retry times) are wall-clock epoch seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import msgspec
from dshell.errors import UsageError
from dshell.jobgraph import cycle_text, find_cycle
from dshell.model import Job, JobRun
from dshell.specs.model import BatchJobSpec, ScheduleSpec
from dshell.specs.schedule import CONCURRENCY, cron_error, iso8601_error, timezone_error

from . import schedules

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ACTIVE = ("PENDING", "STARTING", "RUNNING", "RETRYING")
RECENT = 10  # runs `job show` lists
NEXT_RUNS = 3  # due times `job show` lists


class RunRec(msgspec.Struct, kw_only=True, omit_defaults=True):
    job: str
    n: int
    state: str = "PENDING"
    cause: str = "manual"
    due: float | None = None  # clock time the schedule wanted it
    attempt: int = 0  # attempts launched (or being launched)
    task_id: str | None = None  # the current attempt's task, once known
    tasks: list[str] = []
    first_start: float | None = None  # wall time of the first attempt's start
    attempt_start: float | None = None  # wall time the current attempt started running
    retry_at: float | None = None  # wall time of the next attempt (RETRYING)
    kill_reason: str | None = None  # timeout | killed | replaced
    drained: int = 0  # attempts killed by their agent's maintenance (not counted as retries)
    started_at: str | None = None
    finished_at: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    message: str | None = None


class JobRec(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    spec: BatchJobSpec
    created: float  # clock time
    created_at: str
    paused: bool = False
    next_due: dict[str, float | None] = {}  # schedule id -> next due time (None: exhausted)
    parents_ok: list[str] = []  # parents with a successful run since this job's last run
    next_run: int = 1
    success_count: int = 0
    error_count: int = 0
    last_success: str | None = None
    last_failure: str | None = None
    active: dict[int, RunRec] = {}

    @property
    def policy(self) -> str:
        """The concurrency policy of runs of this job (its first schedule's; else ALLOW)."""
        return self.spec.schedules[0].concurrency_policy if self.spec.schedules else "ALLOW"

    def enabled(self) -> list[ScheduleSpec]:
        return [s for s in self.spec.schedules if s.enabled]


def run_view(run: RunRec) -> JobRun:
    return JobRun(
        job=run.job,
        run=run.n,
        state=run.state,
        cause=run.cause,
        due_at=schedules.iso_time(run.due),
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration=run.duration,
        attempts=run.attempt,
        exit_code=run.exit_code,
        signal=run.signal,
        task_id=run.task_id,
        tasks=list(run.tasks),
        message=run.message,
    )


def job_state(rec: JobRec) -> str:
    if rec.active:
        return "RUNNING"
    if rec.paused:
        return "PAUSED"
    if any(rec.next_due.get(s.id) is not None for s in rec.enabled()):
        return "SCHEDULED"
    if rec.spec.after:
        return "WAITING"
    return "DONE" if rec.enabled() else "IDLE"  # exhausted; disabled schedules never fire


def next_runs(rec: JobRec, n: int = NEXT_RUNS) -> list[str]:
    if rec.paused:
        return []
    times: list[float] = []
    for sched in rec.enabled():
        first = rec.next_due.get(sched.id)
        if first is None:
            continue
        times.append(first)
        times.extend(schedules.next_runs(sched, first, rec.created, n - 1))
    return [t for t in (schedules.iso_time(x) for x in sorted(times)[:n]) if t]


def job_view(rec: JobRec, finished: Iterable[RunRec]) -> Job:
    spec = rec.spec
    first = spec.schedules[0] if spec.schedules else None
    runs = [*finished, *sorted(rec.active.values(), key=lambda r: r.n)]
    return Job(
        name=rec.name,
        backend="local",
        state=job_state(rec),
        description=spec.description,
        command=list(spec.command) or [p.name for p in spec.processes],
        shell=spec.shell,
        schedules=[schedules.describe(s) for s in spec.schedules],
        concurrency_policy=rec.policy,
        starting_deadline=first.starting_deadline if first else None,
        parents=list(spec.after),
        retries=spec.retries,
        timeout=spec.timeout,
        next_runs=next_runs(rec),
        last_success=rec.last_success,
        last_failure=rec.last_failure,
        success_count=rec.success_count,
        error_count=rec.error_count,
        active_runs=len(rec.active),
        runs=[run_view(r) for r in runs[-RECENT:]],
        labels=dict(spec.labels),
        created_at=rec.created_at,
    )


# ---- validation ---------------------------------------------------------------------------


def _schedule_problem(sched: ScheduleSpec) -> str | None:
    if (sched.cron is None) == (sched.iso8601 is None):
        return "give exactly one of cron or iso8601"
    if sched.cron is not None and (why := cron_error(sched.cron)):
        return f"invalid cron expression {sched.cron!r}: {why}"
    if sched.iso8601 is not None and (why := iso8601_error(sched.iso8601)):
        return f"invalid ISO 8601 schedule {sched.iso8601!r}: {why}"
    if why := timezone_error(sched.timezone):
        return why
    if sched.concurrency_policy not in CONCURRENCY:
        return (
            f"concurrency policy must be one of {', '.join(CONCURRENCY)},"
            f" not {sched.concurrency_policy!r}"
        )
    if sched.starting_deadline is not None and sched.starting_deadline < 0:
        return "the starting deadline must be 0 or more seconds"
    return None


def spec_problem(spec: BatchJobSpec) -> str | None:
    """What is wrong with one job spec on its own (the graph is checked apart)."""
    if not NAME.match(spec.name):
        return "a job name is letters, digits, '_', '.' and '-' (at most 128)"
    if spec.instances != 1:
        return f"a run of a job is one task: instances must be 1, not {spec.instances}"
    if spec.retries < -1:
        return "retries must be -1 (until it succeeds), 0 or more"
    if spec.timeout is not None and spec.timeout <= 0:
        return "timeout must be more than 0 seconds"
    if spec.name in spec.after:
        return "a job cannot run after itself"
    ids = [s.id for s in spec.schedules]
    if len(ids) != len(set(ids)):
        return f"schedule ids must be unique, got {ids}"
    for sched in spec.schedules:
        why = _schedule_problem(sched)
        if why is not None:
            return f"schedule {sched.id!r}: {why}"
    return None


def check_graph(existing: Mapping[str, list[str]], new: list[BatchJobSpec]) -> None:
    """Unknown parents and cycles over the jobs already stored plus ``new``: UsageError."""
    graph = dict(existing)
    for spec in new:
        graph[spec.name] = list(spec.after)
    for spec in new:
        unknown = [p for p in spec.after if p not in graph]
        if unknown:
            raise UsageError(f"job {spec.name}: unknown parent job(s): {', '.join(unknown)}")
    cycle = find_cycle(graph)
    if cycle is not None:
        ring = cycle[:-1]
        first = next((i for i, n in enumerate(ring) if n in {s.name for s in new}), 0)
        ring = ring[first:] + ring[:first]  # from a job of this request
        raise UsageError(f"jobs would form a cycle: {cycle_text([*ring, ring[0]])}")


def checked(spec: BatchJobSpec) -> BatchJobSpec:
    why = spec_problem(spec)
    if why is not None:
        raise UsageError(f"job {spec.name!r}: {why}")
    return spec
