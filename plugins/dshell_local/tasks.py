"""Task records and the task state machine (Mesos-like states, timestamped history).

::

    STAGING ──► STARTING ──► RUNNING ──► FINISHED | FAILED
       │            │           │
       │            └──► FAILED (could not spawn) / LOST
       │                        └──► KILLING ──► KILLED
       └──► KILLED (killed before it was launched) / ERROR (invalid: never ran)

A record pairs the public :class:`dshell.model.Task` with engine-private runtime fields
(:class:`TaskRuntime`), and both are stored in one database row.
"""

from __future__ import annotations

import logging
import os
import signal as signals

import msgspec
from dshell.model import Constraint, StateChange, Task, TaskState

from .executor.procfs import now_rfc3339 as utcnow  # the engine's timestamps: the same text

log = logging.getLogger(__name__)

REASON_OOM = "REASON_CONTAINER_LIMITATION_MEMORY"
REASON_KILLED = "REASON_KILLED_BY_USER"
REASON_FAILED = "REASON_COMMAND_EXECUTOR_FAILED"
REASON_LOST = "REASON_EXECUTOR_TERMINATED"
REASON_SANDBOX = "REASON_SANDBOX_ERROR"
REASON_LAUNCH = "REASON_LAUNCH_FAILED"
REASON_WAITING = "REASON_WAITING_FOR_RESOURCES"
REASON_DRAINING = "REASON_AGENT_DRAINING"  # killed because its agent was drained or went DOWN
REASON_PREEMPTED = "REASON_PREEMPTED"  # killed to make room for a task of a higher priority

_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.STAGING: frozenset(
        {TaskState.STARTING, TaskState.KILLED, TaskState.ERROR, TaskState.FAILED}
    ),
    TaskState.STARTING: frozenset(
        {
            TaskState.RUNNING,
            TaskState.KILLING,
            TaskState.FAILED,
            TaskState.FINISHED,
            TaskState.KILLED,
            TaskState.LOST,
        }
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.KILLING, TaskState.FINISHED, TaskState.FAILED, TaskState.KILLED, TaskState.LOST}
    ),
    TaskState.KILLING: frozenset(
        {TaskState.KILLED, TaskState.FAILED, TaskState.FINISHED, TaskState.LOST}
    ),
}

# The environment a task inherits from the engine; everything else comes from its spec.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "USER", "LOGNAME", "SHELL", "TZ")


class TaskRuntime(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Engine-private facts about a task (persisted next to the public Task)."""

    idem_key: str | None = None
    start_time: float | None = None  # the process start time reported by the executor
    grace: float | None = None
    kill_deadline: float | None = None  # epoch seconds when SIGKILL is due
    kill_cause: str | None = None  # the end reason of a kill that was not a user's (drain)
    kill_note: str | None = None  # ... and why, appended to the end message
    tty: bool = False
    port_names: list[str] = []
    port_numbers: list[int] = []  # fixed host ports aligned with port_names (0: any)
    workdir: str | None = None
    acked: bool = False  # the executor was told to forget the exit
    ports_freed: bool = False
    sandbox_removed: bool = False
    templates: bool = False  # render Aurora-style templates in the command at placement
    # a constrained task's placement group ("service:<name>", else "run:<first task id>")
    # and its validated constraints (dshell_local.constraints.need_of reads them back)
    placement_group: str | None = None
    constraints: list[Constraint] = []
    agent_pin: str | None = None  # the agent holding its persistent volumes: placed there only


class TaskRecord:
    """A task in memory: the public Task, its runtime, and its summary as last saved."""

    __slots__ = ("rt", "summary", "task")

    def __init__(self, task: Task, rt: TaskRuntime) -> None:
        self.task = task
        self.rt = rt
        self.summary = b""


def transition(
    task: Task,
    state: TaskState,
    *,
    reason: str | None = None,
    message: str | None = None,
    at: str | None = None,
) -> bool:
    """Move ``task`` to ``state`` and record it; False (and no change) if not allowed."""
    if state not in _ALLOWED.get(task.state, frozenset()):
        log.warning("task %s: ignoring %s -> %s", task.id, task.state, state)
        return False
    at = at or utcnow()
    task.state = state
    task.reason = reason
    task.message = message
    task.history.append(StateChange(state=state.value, at=at, reason=reason, message=message))
    if state is TaskState.RUNNING and task.started_at is None:
        task.started_at = at
    if state.terminal:
        task.finished_at = at
    return True


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_outcome(
    before: TaskState, exit_code: int | None, sig: int | None, oom: bool, lost: bool
) -> tuple[TaskState, str | None, str | None]:
    """The terminal state, reason and message for an exit the executor reported."""
    if lost and before is TaskState.KILLING:
        return TaskState.KILLED, REASON_KILLED, "killed (a new executor re-adopted it: no status)"
    if lost:
        return TaskState.LOST, REASON_LOST, "the executor lost track of the task"
    if oom:
        return TaskState.FAILED, REASON_OOM, "memory limit exceeded (OOM killer)"
    how = f"killed by {signal_name(sig)}" if sig else f"exited with code {exit_code}"
    if before is TaskState.KILLING:
        return TaskState.KILLED, REASON_KILLED, how
    if not sig and exit_code == 0:
        return TaskState.FINISHED, None, None
    return TaskState.FAILED, REASON_FAILED, how


def task_env(
    task: Task, sandbox: str, port_names: list[str], ports: list[int], base: dict[str, str]
) -> dict[str, str]:
    """The dshell variables of a task (its ``env`` field); ``base`` is the user's env."""
    env = dict(base)
    for i, port in enumerate(ports):
        env[f"PORT{i}"] = str(port)
        name = port_names[i] if i < len(port_names) else ""
        if name:
            env[f"PORT_{name.upper().replace('-', '_')}"] = str(port)
    if ports:
        env["PORT"] = str(ports[0])
    env.update(
        {
            "DSHELL_TASK_ID": task.id,
            "DSHELL_SANDBOX": sandbox,
            "MESOS_SANDBOX": sandbox,
            "HOST": task.hostname or "",
            "DSHELL_AGENT_ID": task.agent_id or "",
        }
    )
    return env


def inherited_env() -> dict[str, str]:
    """The variables every task inherits from the engine (read once per engine)."""
    return {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}


def process_env(
    task_env_vars: dict[str, str], base: dict[str, str] | None = None
) -> dict[str, str]:
    """What the process gets: a few inherited variables, then the task's own."""
    env = dict(inherited_env() if base is None else base)
    env.update(task_env_vars)
    return env


def encode_record(rec: TaskRecord) -> tuple[bytes, bytes, bytes]:
    """Full JSON, summary JSON (no history, no env: what listings and events carry), runtime."""
    rec.summary = msgspec.json.encode(msgspec.structs.replace(rec.task, history=[], env={}))
    return msgspec.json.encode(rec.task), rec.summary, msgspec.json.encode(rec.rt)


def decode_record(data: bytes, runtime: bytes) -> TaskRecord:
    return TaskRecord(
        msgspec.json.decode(data, type=Task), msgspec.json.decode(runtime, type=TaskRuntime)
    )
