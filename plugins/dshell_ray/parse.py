"""Ray dashboard JSON → dshell's model: pure functions, tested on captured goldens.

Every native state is mapped here and only here:

- jobs (``/api/jobs/``): PENDING→STAGING, RUNNING, SUCCEEDED→FINISHED, FAILED, STOPPED→KILLED;
  the exit code is ``driver_exit_code`` (Ray ≥ 2.40); a stopped job gets SIGTERM as its
  signal (Ray stops the entrypoint with SIGTERM, then SIGKILL), so an attached run exits 143
  as a killed task of the embedded engine does;
- Ray tasks (``/api/v0/tasks``): PENDING_*→STAGING, SUBMITTED_TO_WORKER→STARTING, RUNNING*→
  RUNNING, FINISHED, FAILED;
- actors (``/api/v0/actors``): DEPENDENCIES_UNREADY/PENDING_CREATION→STAGING,
  RESTARTING→STARTING, ALIVE→RUNNING, DEAD→FINISHED (FAILED when its death cause is an error).

Fields may be missing or added in other Ray versions: lookups are tolerant (``.get``) and an
unknown state maps to a safe neighbour rather than an exception.
"""

from __future__ import annotations

import re
import shlex
import signal as signals
from datetime import UTC, datetime
from typing import Any

from dshell.model import (
    Agent,
    Resources,
    RunSpec,
    StateChange,
    Task,
    TaskState,
    TaskStats,
)

BACKEND = "ray"
MIB = 1024 * 1024
NAME_KEY = "dshell.name"  # job metadata key holding the task name (`run --name`)
SUPERVISOR = "_ray_internal_job_actor_"  # + submission id: the actor running a job's driver

JOB_STATES = {
    "PENDING": TaskState.STAGING,
    "RUNNING": TaskState.RUNNING,
    "SUCCEEDED": TaskState.FINISHED,
    "FAILED": TaskState.FAILED,
    "STOPPED": TaskState.KILLED,
}
TASK_STATES = {
    "NIL": TaskState.STAGING,
    "SUBMITTED_TO_WORKER": TaskState.STARTING,
    "FINISHED": TaskState.FINISHED,
    "FAILED": TaskState.FAILED,
}
ACTOR_STATES = {
    "DEPENDENCIES_UNREADY": TaskState.STAGING,
    "PENDING_CREATION": TaskState.STAGING,
    "RESTARTING": TaskState.STARTING,
    "ALIVE": TaskState.RUNNING,
    "DEAD": TaskState.FINISHED,
}
REASONS = {TaskState.KILLED: "REASON_KILLED_BY_USER", TaskState.FAILED: "REASON_FAILED"}


def rfc3339_ms(ms: Any) -> str | None:
    """Epoch milliseconds (int, float or numeric string; 0/None = unknown) → RFC 3339 UTC."""
    try:
        value = float(ms)
    except (TypeError, ValueError):
        return None
    if value <= 0:
        return None
    return (
        datetime.fromtimestamp(value / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def job_state(status: Any) -> TaskState:
    return JOB_STATES.get(str(status or "").upper(), TaskState.STAGING)


# ---- jobs -------------------------------------------------------------------------------------


def job_to_task(job: dict[str, Any], *, raw: bool = False) -> Task:
    """One job of ``/api/jobs/`` (or ``/api/jobs/{id}``) as a Task; its id is the submission
    id (driver-only jobs, started by ``ray.init()`` outside the job API, use the job id)."""
    state = job_state(job.get("status"))
    meta = {str(k): str(v) for k, v in (job.get("metadata") or {}).items()}
    task_id = str(job.get("submission_id") or job.get("job_id") or "")
    name = meta.pop(NAME_KEY, None) or meta.get("job_name") or task_id
    created = rfc3339_ms(job.get("start_time"))
    finished = rfc3339_ms(job.get("end_time")) if state.terminal else None
    code = job.get("driver_exit_code")
    exit_code = int(code) if isinstance(code, int | float) and not isinstance(code, bool) else None
    if exit_code is None and state == TaskState.FINISHED:
        exit_code = 0
    sig = int(signals.SIGTERM) if state == TaskState.KILLED and exit_code is None else None
    history = [StateChange(state=TaskState.STAGING.value, at=created)] if created else []
    if state != TaskState.STAGING and created:
        history.append(StateChange(state=TaskState.RUNNING.value, at=created))
    if state.terminal and finished:
        history.append(StateChange(state=state.value, at=finished, message=job.get("message")))
    return Task(  # noqa: S604 - a model field: Ray runs the entrypoint with a shell
        id=task_id,
        name=name,
        state=state,
        backend=BACKEND,
        agent_id=job.get("driver_node_id") or None,
        framework_id=job.get("job_id") or None,  # the Ray job id of the driver, once known
        command=[str(job.get("entrypoint") or "")],
        shell=True,
        resources=Resources(
            cpus=_num(job.get("entrypoint_num_cpus")),
            mem=_num(job.get("entrypoint_memory")) / MIB,
            gpus=_num(job.get("entrypoint_num_gpus")),
        ),
        labels=meta,
        env=dict((job.get("runtime_env") or {}).get("env_vars") or {}),
        exit_code=exit_code,
        signal=sig,
        reason=REASONS.get(state) if state.terminal else None,
        message=_job_message(job, state),
        created_at=created,
        started_at=created if state != TaskState.STAGING else None,
        finished_at=finished,
        history=history,
        raw=job if raw else None,
    )


def _job_message(job: dict[str, Any], state: TaskState) -> str | None:
    """Ray's message, without the log tail it appends to failures (``cat`` shows the logs)."""
    text = str(job.get("message") or "")
    if not text:
        return None
    head = text.split(", last available logs", 1)[0].strip()
    if job.get("error_type"):
        head = f"{head} ({job['error_type']})"
    return head if state != TaskState.RUNNING else None


def jobs_to_tasks(jobs: list[dict[str, Any]], *, all_: bool) -> list[Task]:
    """The jobs as tasks; without ``all_`` only the active ones."""
    tasks = [job_to_task(j) for j in jobs if isinstance(j, dict)]
    tasks = [t for t in tasks if t.id]
    return tasks if all_ else [t for t in tasks if t.state.active]


def job_parents(jobs: list[dict[str, Any]]) -> dict[str, str]:
    """Ray job id (hex, e.g. ``02000000``) → the submission id of the job that runs it."""
    return {
        str(j["job_id"]): str(j.get("submission_id") or j["job_id"])
        for j in jobs
        if isinstance(j, dict) and j.get("job_id")
    }


# ---- Ray tasks and actors (ps -a) --------------------------------------------------------


def state_rows(answer: Any) -> list[dict[str, Any]]:
    """The rows of a state API answer (``{"data": {"result": {"result": [...]}}}``)."""
    node: Any = answer
    for key in ("data", "result", "result"):
        if isinstance(node, dict) and key in node:
            node = node[key]
    return [row for row in node if isinstance(row, dict)] if isinstance(node, list) else []


def task_state(state: Any) -> TaskState:
    name = str(state or "").upper()
    if name in TASK_STATES:
        return TASK_STATES[name]
    if name.startswith("PENDING"):
        return TaskState.STAGING
    if name.startswith("RUNNING"):  # RUNNING, RUNNING_IN_RAY_GET, RUNNING_IN_RAY_WAIT
        return TaskState.RUNNING
    return TaskState.STAGING


def ray_task_to_task(row: dict[str, Any], parents: dict[str, str]) -> Task:
    state = task_state(row.get("state"))
    job = str(row.get("job_id") or "")
    history = [
        StateChange(state=str(e.get("state")), at=rfc3339_ms(e.get("created_ms")) or "")
        for e in row.get("events") or []
        if isinstance(e, dict) and rfc3339_ms(e.get("created_ms"))
    ]
    req = row.get("required_resources") or {}
    return Task(
        id=str(row.get("task_id") or ""),
        name=str(row.get("name") or row.get("func_or_class_name") or "task"),
        state=state,
        backend=BACKEND,
        agent_id=row.get("node_id") or None,
        framework_id=job or None,
        parent_task=parents.get(job) or (job or None),
        labels={"ray.kind": str(row.get("type") or "TASK").lower()},
        resources=Resources(cpus=_num(req.get("CPU")), gpus=_num(req.get("GPU"))),
        pid=row.get("worker_pid") or None,
        reason=REASONS.get(state) if state == TaskState.FAILED else None,
        message=row.get("error_message") or row.get("error_type") or None,
        created_at=rfc3339_ms(row.get("creation_time_ms")),
        started_at=rfc3339_ms(row.get("start_time_ms")),
        finished_at=rfc3339_ms(row.get("end_time_ms")) if state.terminal else None,
        history=history,
    )


def actor_to_task(row: dict[str, Any], parents: dict[str, str]) -> Task:
    native = str(row.get("state") or "").upper()
    state = ACTOR_STATES.get(native, TaskState.STAGING)
    cause = row.get("death_cause") or {}
    message = _death_message(cause) if native == "DEAD" else None
    if native == "DEAD" and isinstance(cause, dict) and "creation_task_failure_context" in cause:
        state = TaskState.FAILED
    job = str(row.get("job_id") or "")
    name = str(row.get("name") or "") or str(row.get("class_name") or "actor")
    parent = parents.get(job) or (job or None)
    if name.startswith(SUPERVISOR):  # Ray's actor that runs a job's entrypoint
        parent = name[len(SUPERVISOR) :]
    req = row.get("required_resources") or {}
    return Task(
        id=str(row.get("actor_id") or ""),
        name=name,
        state=state,
        backend=BACKEND,
        agent_id=row.get("node_id") or None,
        framework_id=job or None,
        parent_task=parent,
        labels={"ray.kind": "actor", "ray.class": str(row.get("class_name") or "")},
        resources=Resources(cpus=_num(req.get("CPU")), gpus=_num(req.get("GPU"))),
        pid=row.get("pid") or None,
        message=message,
    )


def _death_message(cause: Any) -> str | None:
    if not isinstance(cause, dict):
        return None
    for ctx in cause.values():
        if isinstance(ctx, dict) and ctx.get("error_message"):
            return str(ctx["error_message"]).splitlines()[0]
    return None


# ---- nodes ----------------------------------------------------------------------------------

_LOGICAL = re.compile(r"^\s*([\d.]+)([KMGTP]?i?B)?/([\d.]+)([KMGTP]?i?B)?\s+(\S+)\s*$")
_UNIT = {"": 1, "B": 1, "KiB": 1024, "MiB": MIB, "GiB": MIB * 1024, "TiB": MIB * 1024**2}


def parse_logical(text: str) -> dict[str, tuple[float, float]]:
    """``"1.0/2.0 CPU\\n0B/953.67MiB memory"`` → {"CPU": (1.0, 2.0), "memory": (0, bytes)}."""
    out: dict[str, tuple[float, float]] = {}
    for line in str(text or "").splitlines():
        m = _LOGICAL.match(line)
        if m:
            used = float(m.group(1)) * _UNIT.get(m.group(2) or "", 1)
            total = float(m.group(3)) * _UNIT.get(m.group(4) or "", 1)
            out[m.group(5)] = (used, total)
    return out


def _summary_by_node(summary: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    data = summary.get("data", {}) if isinstance(summary, dict) else {}
    rows = data.get("summary") or []
    by_node = {}
    for row in rows:
        node_id = (row.get("raylet") or {}).get("nodeId") if isinstance(row, dict) else None
        if node_id:
            by_node[str(node_id)] = row
    logical = data.get("nodeLogicalResources") or data.get("node_logical_resources") or {}
    return by_node, {str(k): str(v) for k, v in logical.items()}


def nodes_to_agents(nodes: Any, summary: Any = None) -> list[Agent]:
    """``/api/v0/nodes`` rows as agents; ``/nodes?view=summary`` (optional) adds the logical
    resources in use (``allocated``) and the node's measured usage (``used``: host CPU
    percentage as cores, memory in use)."""
    usage, logical = _summary_by_node(summary or {})
    agents = []
    for row in state_rows(nodes):
        node_id = str(row.get("node_id") or "")
        total = row.get("resources_total") or {}
        alive = str(row.get("state") or "").upper() == "ALIVE"
        agent = Agent(
            id=node_id,
            hostname=str(row.get("node_name") or row.get("node_ip") or node_id),
            state="UP" if alive else "DOWN",
            backend=BACKEND,
            total=Resources(
                cpus=_num(total.get("CPU")),
                mem=_num(total.get("memory")) / MIB,
                gpus=_num(total.get("GPU")),
            ),
            attributes={
                "ip": str(row.get("node_ip") or ""),
                "head": "true" if row.get("is_head_node") else "false",
                "object_store_mib": f"{_num(total.get('object_store_memory')) / MIB:.0f}",
            },
            reason=row.get("state_message") or None,
        )
        if node_id in logical:
            used = parse_logical(logical[node_id])
            agent.allocated = Resources(
                cpus=used.get("CPU", (0.0, 0.0))[0],
                mem=used.get("memory", (0.0, 0.0))[0] / MIB,
                gpus=used.get("GPU", (0.0, 0.0))[0],
            )
        if node_id in usage:
            agent.used = _node_used(usage[node_id], agent.total.cpus)
            agent.tasks = sum(
                1
                for w in (usage[node_id].get("raylet") or {}).get("coreWorkersStats") or []
                if isinstance(w, dict) and w.get("workerType") == "DRIVER"
            )
        agents.append(agent)
    return agents


def _node_used(row: dict[str, Any], cpus: float) -> Resources:
    """The node's measured usage: Ray reports host-wide CPU % and memory (psutil)."""
    mem = row.get("mem") or []
    used_mem = _num(mem[3]) if isinstance(mem, list) and len(mem) > 3 else 0.0
    return Resources(cpus=round(_num(row.get("cpu")) / 100 * cpus, 3), mem=used_mem / MIB)


def job_stats(jobs: list[dict[str, Any]], summary: Any) -> list[TaskStats]:
    """One sample per running job: its entrypoint resources, and the Ray worker processes of
    its job across nodes (the dashboard's summary has no per-job CPU or memory figures)."""
    usage, _ = _summary_by_node(summary or {})
    workers: dict[str, int] = {}
    for row in usage.values():
        for w in (row.get("raylet") or {}).get("coreWorkersStats") or []:
            if isinstance(w, dict) and w.get("jobId"):
                workers[str(w["jobId"])] = workers.get(str(w["jobId"]), 0) + 1
    out = []
    for task in jobs_to_tasks(jobs, all_=False):
        if task.state != TaskState.RUNNING:
            continue
        out.append(
            TaskStats(
                task_id=task.id,
                name=task.name,
                agent_id=task.agent_id,
                allocated=task.resources,
                processes=workers.get(task.framework_id or "", 0),
            )
        )
    return out


# ---- logs ------------------------------------------------------------------------------------

_SETUP_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\tINFO job_manager\.py:\d+ -- "
    r"Runtime env is setting up\.$"
)


def job_output(log: str, job: dict[str, Any], *, complete: bool) -> str:
    """The job's own output: its log without the two lines Ray's job supervisor writes into it
    ("Runtime env is setting up." and "Running entrypoint for job ID: CMD", which may land
    after the first lines of output). Unless ``complete``, a last line without its newline is
    held back, so a line of Ray's is never shown half-written and then dropped."""
    if not complete:
        log = log[: log.rfind("\n") + 1]
    sid = job.get("submission_id") or job.get("job_id") or ""
    banner = f"Running entrypoint for job {sid}: {job.get('entrypoint') or ''}"
    lines = log.splitlines(keepends=True)
    out, setup_seen, banner_seen = [], False, False
    for line in lines:
        bare = line.rstrip("\n")
        if not setup_seen and _SETUP_LINE.match(bare):
            setup_seen = True
            continue
        if not banner_seen and bare == banner:
            banner_seen = True
            continue
        out.append(line)
    return "".join(out)


# ---- submission -------------------------------------------------------------------------------


def entrypoint(spec: RunSpec) -> str:
    """The job's entrypoint: the ``--shell`` string as is, else the argv shell-quoted."""
    return spec.command[0] if spec.shell else shlex.join(spec.command)


def submit_body(spec: RunSpec, submission_id: str | None = None) -> dict[str, Any]:
    """The JSON of ``POST /api/jobs/`` for a RunSpec (resources as the entrypoint's)."""
    body: dict[str, Any] = {"entrypoint": entrypoint(spec)}
    if submission_id:
        body["submission_id"] = submission_id
    meta = dict(spec.labels)
    if spec.name:
        meta[NAME_KEY] = spec.name
    if meta:
        body["metadata"] = meta
    if spec.env:
        body["runtime_env"] = {"env_vars": dict(spec.env)}
    res = spec.resources
    if res.cpus > 0:
        body["entrypoint_num_cpus"] = res.cpus
    if res.gpus > 0:
        body["entrypoint_num_gpus"] = res.gpus
    if res.mem > 0:
        body["entrypoint_memory"] = int(res.mem * MIB)
    return body
