"""The verbs of the batch jobs controller (``POST /v1/jobs/{verb}``), as functions of it.

Each verb changes the controller's records inside the open transaction; the controller's
``call`` commits before the answer, so what a verb reports is durable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from dshell.errors import ConflictError, NotFoundError, UsageError
from dshell.model import Job, JobRun
from dshell.specs.model import BatchJobSpec, ScheduleSpec

from . import schedules
from .jobapi import JobCall, JobCreate
from .jobrecs import JobRec, RunRec, check_graph, checked, run_view
from .tasks import utcnow

if TYPE_CHECKING:
    from .batch import JobController


def new_rec(spec: BatchJobSpec, now: float) -> JobRec:
    return JobRec(name=spec.name, spec=spec, created=now, created_at=utcnow())


def first_due(sched: ScheduleSpec, now: float, created: float) -> float | None:
    """The first due time from ``now`` on (a time in the past is not owed)."""
    try:
        return schedules.next_due(sched, now - 1e-6, created)
    except ValueError as exc:
        raise UsageError(f"schedule {sched.id!r}: {exc}") from None


def _validate(ctl: JobController, req: JobCreate) -> None:
    from .ids import IdGenerator
    from .submit import build

    names = [s.name for s in req.jobs]
    if not names:
        raise UsageError("no job to create")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"the same job twice: {', '.join(dupes)}")
    for spec in req.jobs:
        checked(spec)
        if spec.name in ctl.jobs and not req.replace:
            raise ConflictError(f"job {spec.name!r} exists (replace it with --replace)")
        probe = ctl.runspec(new_rec(spec, 0.0), RunRec(job=spec.name, n=0))
        try:
            build(probe, IdGenerator(), ctl.engine.allocator)  # could a run ever be placed?
        except UsageError as exc:
            raise UsageError(f"job {spec.name!r}: {exc.message.removeprefix('run: ')}") from None
        for sched in spec.schedules:
            first_due(sched, 0.0, 0.0)
    existing = {n: list(r.spec.after) for n, r in ctl.jobs.items()}
    check_graph(existing, req.jobs)


async def create(ctl: JobController, req: JobCreate) -> list[Job]:
    """Validate every job (spec, launchability, parents, cycles), then store them all."""
    _validate(ctl, req)
    now = ctl.clock()
    created = []
    for spec in req.jobs:
        old = ctl.jobs.get(spec.name)
        rec = new_rec(spec, now)
        if old is not None:  # replaced: keep its runs, counts and pause
            rec = msgspec.structs.replace(old, spec=spec, next_due={}, parents_ok=[])
        for sched in spec.schedules:
            rec.next_due[sched.id] = first_due(sched, now, rec.created)
        ctl.jobs[spec.name] = rec
        ctl.save(rec)
        created.append(rec)
    ctl.index()
    await ctl.engine.store.commit()
    ctl.wake()
    return [ctl.view(rec) for rec in created]


def show(ctl: JobController, req: JobCall) -> Job:
    return ctl.view(ctl.get(req.name))


def run(ctl: JobController, req: JobCall) -> JobRun:
    return run_view(ctl.new_run(ctl.get(req.name), "manual"))


def kill(ctl: JobController, req: JobCall) -> list[JobRun]:
    rec = ctl.get(req.name)
    runs = list(rec.active.values())
    if req.run is not None:
        runs = [r for r in runs if r.n == req.run]
        if not runs:
            raise NotFoundError(f"job {req.name}: no active run {req.run}")
    for one in runs:
        ctl.kill_run(rec, one, "killed")
    return [run_view(r) for r in runs]


def rm(ctl: JobController, req: JobCall) -> Job:
    rec = ctl.get(req.name)
    dependants = sorted(c for c in ctl.children.get(rec.name, ()) if c in ctl.jobs)
    if dependants:
        raise ConflictError(
            f"job {rec.name} has dependent jobs: {', '.join(dependants)} (remove them first)"
        )
    view = ctl.view(rec)
    for one in list(rec.active.values()):
        ctl.kill_run(rec, one, "killed")
    ctl.forget(rec.name)
    return view


def history(ctl: JobController, req: JobCall) -> list[JobRun]:
    rec = ctl.get(req.name)
    runs = [*ctl.finished_runs(rec.name, req.limit), *rec.active.values()]
    runs.sort(key=lambda r: r.n)
    if req.limit is not None:
        runs = runs[-req.limit :] if req.limit else []
    return [run_view(r) for r in runs]


def pause(ctl: JobController, req: JobCall) -> Job:
    rec = ctl.get(req.name)
    rec.paused = True
    ctl.save(rec)
    return ctl.view(rec)


def resume(ctl: JobController, req: JobCall) -> Job:
    rec = ctl.get(req.name)
    if rec.paused:
        rec.paused = False
        now = ctl.clock()
        for sched in rec.enabled():  # due times passed while paused are not caught up
            if (due := rec.next_due.get(sched.id)) is not None and due <= now:
                rec.next_due[sched.id] = schedules.next_due(sched, now, rec.created)
        ctl.save(rec)
        ctl.wake()
    return ctl.view(rec)


VERBS: dict[str, Callable[[JobController, JobCall], Any]] = {
    "show": show,
    "run": run,
    "kill": kill,
    "rm": rm,
    "history": history,
    "pause": pause,
    "resume": resume,
}
