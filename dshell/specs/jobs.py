"""Chronos and Metronome job JSON -> :class:`BatchJobSpec`.

Chronos (``docs/docs/api.md``): ``name``, ``command`` (+ ``arguments`` when ``shell`` is false),
an ISO 8601 ``schedule`` with ``scheduleTimeZone`` and ``epsilon``, or ``parents``; ``retries``
(default 2), cpus 0.1 / mem 128 / disk 256 by default, ``concurrent`` (default false).

Metronome (``api/.../v1/schema/jobspec.schema.json``): ``id``, ``run{cmd|args, cpus, mem, disk,
env, placement, restart, ...}``, ``schedules[{id, cron, timezone, startingDeadlineSeconds,
concurrencyPolicy, enabled}]``, ``dependencies[{id}]``.
"""

from __future__ import annotations

import re
from typing import Any

from dshell.specs import schedule as sched
from dshell.specs.common import check_file
from dshell.specs.issues import Issues
from dshell.specs.lines import parse_json, parse_yaml
from dshell.specs.marathon_app import NO_IMAGES
from dshell.specs.model import (
    BatchJobSpec,
    Constraint,
    LoadedSpec,
    ResourceSpec,
    ScheduleSpec,
)
from dshell.specs.reader import Reader

METRONOME_ID = re.compile(r"^([a-z0-9]+(-[a-z0-9]+)*)(\.([a-z0-9]+(-[a-z0-9]+)*))*$")
_CHRONOS_STATS = (
    "successCount",
    "errorCount",
    "lastSuccess",
    "lastError",
    "executor",
    "executorFlags",
    "taskInfoData",
    "async",
    "dataJob",
    "owner",
    "ownerName",
    "softError",
    "highPriority",
    "uris",
    "fetch",
    "runAsUser",
)
_CHRONOS_OPERATORS = {"EQUALS": "IS", "LIKE": "LIKE", "UNLIKE": "UNLIKE"}


def _parse(text: str, source: str, syntax: str) -> tuple[Any, Issues]:
    data, index = (parse_yaml if syntax == "yaml" else parse_json)(text, source)
    return data, Issues(source, index, "json")


def _finish(loaded: LoadedSpec, issues: Issues, allow_gpus: bool) -> LoadedSpec:
    check_file(loaded, issues, allow_gpus=allow_gpus)
    issues.check()
    loaded.warnings = issues.warning_texts()
    return loaded


def load_chronos(
    text: str, source_name: str, *, syntax: str = "json", allow_gpus: bool = False, **_opts: Any
) -> LoadedSpec:
    """One Chronos job, or a list of them (as ``GET /v1/scheduler/jobs`` returns)."""
    data, issues = _parse(text, source_name, syntax)
    loaded = LoadedSpec(kind="job", format="chronos", source=source_name)
    items = [((i,), d) for i, d in enumerate(data)] if isinstance(data, list) else [((), data)]
    loaded.jobs = [chronos_job(Reader(d, path, issues)) for path, d in items]
    return _finish(loaded, issues, allow_gpus)


def _chronos_constraints(r: Reader) -> list[Constraint]:
    out = []
    for i, item in enumerate(r.items("constraints")):
        path = r.at("constraints", i)
        if not (
            isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item)
        ):
            r.issues.error(path, "expected [attribute, EQUALS|LIKE|UNLIKE, value]")
            continue
        op = _CHRONOS_OPERATORS.get(item[1])
        if op is None:
            r.issues.error(
                (*path, 1), f"unknown operator {item[1]!r}; expected EQUALS, LIKE or UNLIKE"
            )
            continue
        c = Constraint(item[0], op, item[2])
        r.issues.note(c, path, {"field": 0, "operator": 1, "value": 2})
        out.append(c)
    return out


def _chronos_schedule(r: Reader) -> list[ScheduleSpec]:
    expr = r.text("schedule")
    if expr is None:
        return []
    epsilon = r.text("epsilon")
    deadline = sched.duration_seconds(epsilon) if epsilon else None
    if epsilon and deadline is None:
        r.issues.error(
            r.at("epsilon"), f"expected an ISO 8601 duration like PT30M, got {epsilon!r}"
        )
    spec = ScheduleSpec(
        iso8601=expr,
        timezone=r.text("scheduleTimeZone", "UTC") or "UTC",
        starting_deadline=deadline,
        enabled=not r.flag("disabled", False),
        concurrency_policy="ALLOW" if r.flag("concurrent", False) else "FORBID",
    )
    r.issues.note(
        spec,
        r.path,
        {
            "iso8601": "schedule",
            "timezone": "scheduleTimeZone",
            "starting_deadline": "epsilon",
            "concurrency_policy": "concurrent",
        },
    )
    return [spec]


def chronos_job(r: Reader) -> BatchJobSpec:
    name = r.text("name", "", required=True) or ""
    command = r.text("command", "", required=True) or ""
    shell = r.flag("shell", True)
    args = r.texts("arguments")
    if r.child("container") is not None:
        r.issues.error(r.at("container"), NO_IMAGES.replace("container.docker", "container"))
    res = ResourceSpec(
        cpus=r.number("cpus", 0.1) or 0.0,
        mem=r.number("mem", 128.0) or 0.0,
        disk=r.number("disk", 256.0) or 0.0,
    )
    r.issues.note(res, r.path)
    env = {}
    for e in r.children("environmentVariables"):
        env[e.text("name", "", required=True) or ""] = e.text("value", "") or ""
    job = BatchJobSpec(
        name=name,
        command=[command] if shell else [command, *args],
        shell=shell,
        description=r.text("description"),
        resources=res,
        env=env,
        schedules=_chronos_schedule(r),
        retries=r.integer("retries", 2) or 0,
        after=r.texts("parents"),
        constraints=_chronos_constraints(r),
    )
    r.issues.note(job, r.path, {"after": "parents", "command": "command"})
    if job.schedules and job.after:
        r.issues.error(r.at("parents"), "give schedule or parents, not both")
    elif not job.schedules and not job.after and name:
        r.issues.error(r.at("schedule"), "a Chronos job needs a schedule or parents")
    r.finish(
        ignore=(*_CHRONOS_STATS, "concurrent", "disabled"),
        unsupported={"maxCompletionTime": "not enforced"},
    )
    return job


def load_metronome(
    text: str, source_name: str, *, syntax: str = "json", allow_gpus: bool = False, **_opts: Any
) -> LoadedSpec:
    """One Metronome job (``POST /v1/jobs`` body), schedules included."""
    data, issues = _parse(text, source_name, syntax)
    loaded = LoadedSpec(kind="job", format="metronome", source=source_name)
    loaded.jobs = [metronome_job(Reader(data, (), issues))]
    return _finish(loaded, issues, allow_gpus)


def _metronome_schedule(s: Reader) -> ScheduleSpec:
    tz = s.text("timezone") or s.text("timeZone") or "UTC"
    spec = ScheduleSpec(
        id=s.text("id", "default", required=True) or "default",
        cron=s.text("cron", "", required=True) or "",
        timezone=tz,
        starting_deadline=s.number("startingDeadlineSeconds", None),
        concurrency_policy=s.text("concurrencyPolicy", "ALLOW") or "ALLOW",
        enabled=s.flag("enabled", True),
    )
    s.issues.note(
        spec,
        s.path,
        {
            "timezone": "timezone" if s.has("timezone") else "timeZone",
            "starting_deadline": "startingDeadlineSeconds",
            "concurrency_policy": "concurrencyPolicy",
        },
    )
    s.finish()
    return spec


def _placement(run: Reader) -> list[Constraint]:
    placement = run.child("placement")
    out = []
    for c in placement.children("constraints") if placement else []:
        op = c.text("operator", "", required=True) or ""
        constraint = Constraint(
            c.text("attribute", "", required=True) or "",
            "IS" if op == "EQ" else op,
            c.text("value"),
        )
        c.issues.note(constraint, c.path, {"field": "attribute"})
        c.finish()
        out.append(constraint)
    if placement:
        placement.finish()
    return out


def _run(run: Reader) -> tuple[list[str], bool]:
    cmd, args = run.text("cmd"), run.texts("args")
    if cmd is not None and args:
        run.issues.error(run.at("args"), "give cmd or args, not both")
    if cmd is None and not args:
        run.issues.error(run.at("cmd"), "run needs cmd (a shell command) or args (argv)")
    for key in ("docker", "ucr"):
        if run.has(key):
            run.issues.error(run.at(key), NO_IMAGES.replace("container.docker", f"run.{key}"))
    return ([cmd], True) if cmd is not None else (args, False)


def _restart(run: Reader) -> tuple[int, float | None]:
    """``run.restart``: (retries, retry deadline); ON_FAILURE retries until the deadline."""
    restart = run.child("restart")
    if restart is None:
        return 0, None
    policy = restart.text("policy", "NEVER", required=True)
    if policy not in ("NEVER", "ON_FAILURE"):
        restart.issues.error(restart.at("policy"), f"expected NEVER or ON_FAILURE, got {policy!r}")
    deadline = restart.number("activeDeadlineSeconds", None)
    restart.finish()
    return (-1 if policy == "ON_FAILURE" else 0), deadline


def metronome_job(r: Reader) -> BatchJobSpec:
    ident = r.text("id", "", required=True) or ""
    if ident and not METRONOME_ID.match(ident):
        r.issues.error(
            r.at("id"),
            f"invalid job id {ident!r}: lowercase letters, digits and '-',"
            " in parts separated by '.'",
        )
    run = r.child("run") or Reader({}, r.at("run"), r.issues)
    if not r.has("run"):
        r.issues.error(r.at("run"), "required field 'run' is missing (the command and resources)")
    command, shell = _run(run)
    res = ResourceSpec(
        cpus=run.number("cpus", 1.0, required=True) or 0.0,
        mem=run.number("mem", 128.0, required=True) or 0.0,
        disk=run.number("disk", 0.0, required=True) or 0.0,
        gpus=run.number("gpus", 0.0) or 0.0,
    )
    r.issues.note(res, run.path)
    retries, deadline = _restart(run)
    job = BatchJobSpec(
        name=ident,
        command=command,
        shell=shell,
        description=r.text("description"),
        resources=res,
        env=run.text_map("env"),
        labels=r.text_map("labels"),
        schedules=[_metronome_schedule(s) for s in r.children("schedules")],
        retries=retries,
        retry_deadline=deadline,
        after=[d.text("id", "", required=True) or "" for d in r.children("dependencies")],
        constraints=_placement(run),
        kill_grace_period=run.number("taskKillGracePeriodSeconds", None),
    )
    job.retry_backoff.max_launch_delay = run.number("maxLaunchDelay", 300.0) or 0.0
    r.issues.note(job, r.path, {"name": "id", "after": "dependencies", "command": ("run", "cmd")})
    run.finish(
        ignore=("networks",),
        unsupported={
            "artifacts": "dshell does not download artifacts",
            "user": "tasks run as the user of the engine",
        },
        errors={
            "volumes": "volumes are not supported for jobs",
            "secrets": "secrets are not supported",
        },
    )
    r.finish()
    return job
