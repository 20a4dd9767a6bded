"""Pure parsers: Slurm's job JSON (``squeue --json``) → dshell's model (nodes and sstat:
:mod:`dshell_slurm.parse_nodes`).

Tested on output captured from the real Slurm 22.05 tools (``tests/slurm/golden/``) and on
hand-made variants of the newer formats (23.02+): numbers as ``{"set", "infinite", "number"}``,
``job_state``/node ``state`` as lists, ``exit_code`` as an object, ``node_names``. Unknown
fields are ignored and missing ones default, so a new Slurm release degrades, never crashes.

Slurm states map onto dshell's in ONE place: :data:`JOB_STATES` (and :func:`node_state`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from dshell.model import Resources, StateChange, Task, TaskState

BACKEND = "slurm"
LABELS_PREFIX = "dshell-labels="  # job comment carrying dshell's labels as JSON
MAX_ARRAY_EXPANSION = 100_000

S = TaskState
#: Slurm job state → (dshell state, machine-readable reason). The only state table.
JOB_STATES: dict[str, tuple[TaskState, str | None]] = {
    "PENDING": (S.STAGING, None),
    "REQUEUED": (S.STAGING, "REASON_REQUEUED"),
    "REQUEUE_HOLD": (S.STAGING, "REASON_REQUEUED"),
    "REQUEUE_FED": (S.STAGING, "REASON_REQUEUED"),
    "RESV_DEL_HOLD": (S.STAGING, "REASON_RESERVATION_DELETED"),
    "CONFIGURING": (S.STARTING, None),
    "RUNNING": (S.RUNNING, None),
    "COMPLETING": (S.RUNNING, None),
    "RESIZING": (S.RUNNING, None),
    "SIGNALING": (S.RUNNING, None),
    "STAGE_OUT": (S.RUNNING, None),
    "SUSPENDED": (S.RUNNING, "REASON_SUSPENDED"),
    "STOPPED": (S.RUNNING, "REASON_STOPPED"),
    "COMPLETED": (S.FINISHED, None),
    "FAILED": (S.FAILED, "REASON_COMMAND_FAILED"),
    "SPECIAL_EXIT": (S.FAILED, "REASON_COMMAND_FAILED"),
    "NODE_FAIL": (S.FAILED, "REASON_AGENT_FAILED"),
    "BOOT_FAIL": (S.FAILED, "REASON_AGENT_FAILED"),
    "LAUNCH_FAILED": (S.FAILED, "REASON_LAUNCH_FAILED"),
    "OUT_OF_MEMORY": (S.FAILED, "REASON_CONTAINER_LIMITATION_MEMORY"),
    "TIMEOUT": (S.FAILED, "REASON_MAX_COMPLETION_TIME_REACHED"),
    "DEADLINE": (S.FAILED, "REASON_DEADLINE"),
    "CANCELLED": (S.KILLED, "REASON_KILLED_BY_USER"),
    "PREEMPTED": (S.KILLED, "REASON_PREEMPTED"),
    "REVOKED": (S.KILLED, "REASON_REVOKED"),
}
# Flags that may ride along a base state in list form; COMPLETING wins (the job is not done).
_STATE_FLAGS = ("COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING")
_NO_REASON = {"", "None", "none", None}


# ---- field helpers --------------------------------------------------------------------------


def num(value: Any) -> float | None:
    """A Slurm number: plain or ``{"set", "infinite", "number"}`` (None if unset/infinite)."""
    if type(value) is int:  # the common case first: this runs ~10 times per job
        return value
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def inum(value: Any) -> int | None:
    n = num(value)
    return None if n is None else int(n)


def text(value: Any) -> str:
    """A string field that may be missing, null, or (newer Slurm) a list of strings."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def rfc3339(epoch: Any) -> str | None:
    """Epoch seconds (any Slurm number form) → RFC 3339 UTC, None for 0/unset."""
    n = num(epoch)
    if not n or n <= 0:
        return None
    return _iso(n)


def epoch(rfc: str) -> float:
    """RFC 3339 (as :func:`rfc3339` writes it) → epoch seconds."""
    return datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=4096)
def _iso(seconds: float) -> str:
    # jobs submitted together share their times: caching halves the cost of a large listing
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def tokens(value: Any) -> list[str]:
    """A state as upper-case tokens: ``"RUNNING"`` or ``["PENDING", "REQUEUED"]``."""
    if isinstance(value, list):
        return [str(v).upper() for v in value if v]
    return [t for t in str(value or "").upper().replace("+", " ").split() if t]


def errors_of(doc: dict[str, Any]) -> list[str]:
    """Slurm's own error messages inside a JSON document."""
    out = []
    for err in doc.get("errors") or []:
        if isinstance(err, dict):
            msg = err.get("description") or err.get("error") or ""
            out.append(str(msg))
        else:
            out.append(str(err))
    return [m for m in out if m]


# ---- states and exits -----------------------------------------------------------------------


def job_state(state: Any, reason: Any = None) -> tuple[TaskState, str | None, str]:
    """(dshell state, reason code, the Slurm state name) for a job's ``job_state``."""
    never = str(reason) == "DependencyNeverSatisfied"
    if type(state) is str:  # a listing asks twice per job (is_active, job_to_task): cache
        return _job_state_of(state, never)
    if isinstance(state, list) and all(type(v) is str for v in state):
        return _job_state_of(tuple(state), never)
    return _job_state(tokens(state), never)


@lru_cache(maxsize=256)
def _job_state_of(state: str | tuple[str, ...], never: bool) -> tuple[TaskState, str | None, str]:
    return _job_state(tokens(list(state) if isinstance(state, tuple) else state), never)


def _job_state(toks: list[str], never: bool) -> tuple[TaskState, str | None, str]:
    flag = next((f for f in _STATE_FLAGS if f in toks), None)
    base = next((t for t in toks if t in JOB_STATES and t not in _STATE_FLAGS), None)
    name = flag if flag == "COMPLETING" or base is None else base
    if name is None:
        return S.RUNNING, None, toks[0] if toks else "UNKNOWN"
    mapped, code = JOB_STATES.get(name, (S.RUNNING, None))
    if name == "CANCELLED" and never:
        code = "REASON_DEPENDENCY_NEVER_SATISFIED"
    return mapped, code, name


def is_active(job: dict[str, Any]) -> bool:
    """Whether a job record is not terminal (cheap: lets listings skip parsing finished jobs)."""
    return not job_state(job.get("job_state"))[0].terminal


def exit_status(value: Any) -> tuple[int | None, int | None]:
    """(exit code, signal) from 22.05's raw wait status or an exit-code object (23.02+, sacct)."""
    if isinstance(value, dict):
        sig = value.get("signal") or {}
        if isinstance(sig, dict):  # {"id": …} (23.02+) or sacct 22.05's {"signal_id": …}
            sig = sig.get("id", sig.get("signal_id"))
        signo = inum(sig)
        code = inum(value.get("return_code"))
        status = tokens(value.get("status"))
        if signo and ("SIGNALED" in status or not code):
            return None, signo
        return code, None
    raw = inum(value)
    if raw is None:
        return None, None
    if raw & 0x7F:
        return None, raw & 0x7F
    return (raw >> 8) & 0xFF, None


# ---- arrays and ids -------------------------------------------------------------------------


def expand_array(spec: str, limit: int = MAX_ARRAY_EXPANSION) -> list[int]:
    """Indices of an array spec: ``"2-9%2"``, ``"1,3,5-11:2"``; empty list if malformed."""
    spec = spec.split("%", 1)[0].strip()
    out: list[int] = []
    for part in filter(None, spec.split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            return []
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        step = int(m.group(3) or 1) or 1
        out.extend(range(lo, hi + 1, step))
        if len(out) > limit:
            return out[:limit]
    return out


def task_id(job: dict[str, Any]) -> str:
    """``1234`` for a job, ``1234_5`` for an array task."""
    array_job, index = inum(job.get("array_job_id")), inum(job.get("array_task_id"))
    return _task_id(array_job, index, job.get("job_id"))


def _task_id(array_job: int | None, index: int | None, job_id: Any) -> str:
    if array_job and index is not None:
        return f"{array_job}_{index}"
    return str(inum(job_id) or "")


# ---- resources --------------------------------------------------------------------------------

_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}


def mib(value: str) -> float:
    """``100M`` / ``2G`` / ``512`` (MiB) → MiB."""
    m = re.fullmatch(r"([\d.]+)([KMGTP]?)", value.strip().upper())
    if not m:
        return 0.0
    return float(m.group(1)) * _UNITS.get(m.group(2) or "M", 1.0)


def tres(value: str) -> Resources:
    """A TRES string (``cpu=2,mem=100M,node=1,gres/gpu=1``) → Resources."""
    cpus, mem, gpus = _tres(text(value))
    res = Resources(cpus=cpus, mem=mem)
    if gpus:  # set only when present: an explicit 0.0 would show up in JSON output
        res.gpus = gpus
    return res


@lru_cache(maxsize=1024)
def _tres(value: str) -> tuple[float, float, float]:
    cpus = mem = gpus = 0.0
    for item in filter(None, value.split(",")):
        key, _, val = item.partition("=")
        if key == "cpu":
            cpus = float(num(val) or 0)
        elif key == "mem":
            mem = mib(val)
        elif key == "gres/gpu":
            gpus = float(num(val) or 0)
    return cpus, mem, gpus


def job_resources(job: dict[str, Any]) -> Resources:
    """Allocated (else requested) cpus/mem/gpus of a job."""
    for key in ("tres_alloc_str", "tres_req_str"):
        value = text(job.get(key))
        if value:
            return tres(value)
    cpus = float(num(job.get("cpus")) or 0)
    mem = num(job.get("memory_per_node"))
    if mem is None:
        mem = (num(job.get("memory_per_cpu")) or 0) * max(cpus, 1)
    return Resources(cpus=cpus, mem=float(mem))


def labels_from_comment(comment: str) -> dict[str, str]:
    if not comment.startswith(LABELS_PREFIX):
        return {}
    try:
        data = json.loads(comment[len(LABELS_PREFIX) :])
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def labels_comment(labels: dict[str, str]) -> str:
    return LABELS_PREFIX + json.dumps(labels, separators=(",", ":"), sort_keys=True)


# ---- jobs → tasks -----------------------------------------------------------------------------


def _message(job: dict[str, Any], state: TaskState, slurm_state: str) -> str | None:
    reason = text(job.get("state_reason"))
    desc = text(job.get("state_description"))
    parts = [p for p in (reason if reason not in _NO_REASON else "", desc) if p]
    if slurm_state in ("SUSPENDED", "STOPPED", "PREEMPTED", "REQUEUED"):
        parts.insert(0, slurm_state.lower())
    if state == S.FINISHED or not parts:
        return None
    return ": ".join(parts)


def _history(task: Task, slurm_state: str) -> list[StateChange]:
    hist = []
    if task.created_at:
        hist.append(StateChange(state=S.STAGING.value, at=task.created_at))
    if task.started_at and task.state != S.STAGING:
        hist.append(StateChange(state=S.RUNNING.value, at=task.started_at))
    if task.state.terminal and task.finished_at:
        hist.append(
            StateChange(
                state=task.state.value,
                at=task.finished_at,
                reason=task.reason,
                message=task.message or slurm_state,
            )
        )
    return hist


def job_to_task(job: dict[str, Any], *, raw: bool = False) -> Task:
    """One Slurm job record (squeue/scontrol JSON) → Task. Each field is read once: a
    listing runs this for every job Slurm keeps."""
    get = job.get
    state, reason, slurm_state = job_state(get("job_state"), get("state_reason"))
    terminal = state.terminal
    exit_code, signal = exit_status(get("exit_code")) if terminal else (None, None)
    node = text(get("batch_host")) or text(get("nodes") or get("node_names"))
    labels = labels_from_comment(text(get("comment")))
    user, partition = text(get("user_name")), text(get("partition"))
    if user:
        labels["slurm/user"] = user
    if partition:
        labels["slurm/partition"] = partition
    array_job, array_index = inum(get("array_job_id")), inum(get("array_task_id"))
    command = text(get("command"))
    task = Task(
        id=_task_id(array_job, array_index, get("job_id")),
        name=text(get("name")),
        state=state,
        backend=BACKEND,
        agent_id=node or None,
        hostname=node or None,
        role=text(get("account")) or None,
        command=[command] if command else [],
        resources=job_resources(job),
        labels=labels,
        instance=array_index if array_job else None,
        exit_code=exit_code,
        signal=signal,
        reason=reason,
        message=_message(job, state, slurm_state),
        created_at=rfc3339(get("submit_time")),
        started_at=rfc3339(get("start_time")) if state != S.STAGING else None,
        finished_at=rfc3339(get("end_time")) if terminal else None,
        sandbox=text(get("current_working_directory")) or None,
        raw=job if raw else None,
    )
    task.history = _history(task, slurm_state)
    return task


def jobs_to_tasks(doc: dict[str, Any], *, raw: bool = False) -> list[Task]:
    """Every task of a ``squeue --json`` document; pending array remainders expanded."""
    out: list[Task] = []
    for job in doc.get("jobs") or []:
        if not isinstance(job, dict):
            continue
        pending = text(job.get("array_task_string"))
        if pending and inum(job.get("array_task_id")) is None:
            base = job_to_task(job, raw=raw)
            array_job = inum(job.get("array_job_id")) or inum(job.get("job_id"))
            for i in expand_array(pending):
                out.append(_array_member(base, array_job, i))
        else:
            out.append(job_to_task(job, raw=raw))
    return out


def _array_member(base: Task, array_job: int | None, index: int) -> Task:
    return msgspec.structs.replace(base, id=f"{array_job}_{index}", instance=index)


def raw_job_id(job: dict[str, Any]) -> int | None:
    """The numeric job id Slurm's own tools (srun --jobid, sstat) want."""
    return inum(job.get("job_id"))


# ---- output files -----------------------------------------------------------------------------

_PATTERN = re.compile(r"%(\d*)([%AabjJNnstux])")


def expand_output(pattern: str, job: dict[str, Any]) -> str:
    """Expand sbatch's filename pattern (``%j``, ``%A_%a``, ``%x``, ``%3a``…) for one job."""
    jid = inum(job.get("job_id")) or 0
    array_job = inum(job.get("array_job_id")) or 0
    index = inum(job.get("array_task_id")) if array_job else None
    node = text(job.get("batch_host")) or text(job.get("nodes")).split(",")[0]
    values = {
        "A": str(array_job or jid),
        "a": str(index if index is not None else 4294967294),
        "b": str((index or 0) % 10),
        "j": str(jid),
        "J": str(jid),
        "N": node,
        "n": "0",
        "s": "batch",
        "t": "0",
        "u": text(job.get("user_name")),
        "x": text(job.get("name")),
    }

    def sub(m: re.Match[str]) -> str:
        if m.group(2) == "%":
            return "%"
        value = values[m.group(2)]
        width = int(m.group(1) or 0)
        return value.zfill(width) if value.isdigit() else value

    return _PATTERN.sub(sub, pattern)


def output_paths(job: dict[str, Any]) -> tuple[str, str]:
    """Absolute (stdout, stderr) paths of a batch job, as slurmd writes them."""
    cwd = text(job.get("current_working_directory")) or "/"
    array = bool(inum(job.get("array_job_id")))
    default = "slurm-%A_%a.out" if array else "slurm-%j.out"
    out = text(job.get("standard_output")) or default
    err = text(job.get("standard_error")) or out

    def absolute(path: str) -> str:
        path = expand_output(path, job)
        return path if path.startswith("/") else cwd.rstrip("/") + "/" + path

    return absolute(out), absolute(err)
