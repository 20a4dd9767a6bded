"""What dshell remembers about a Slurm cluster, under ``state_dir()/slurm/<cluster key>/``.

- ``tasks.json``: final states of jobs dshell waited for. Without accounting (no slurmdbd)
  Slurm forgets a job MinJobAge seconds after it ends; attached runs keep their exit status.
- ``events.json``: the event log. Events come from diffing successive squeue snapshots; the
  log keeps the last snapshot, the sequence counter and the recent events, so sequence numbers
  keep increasing across dshell processes and ``events --since N`` can replay.

Both files are small JSON documents written atomically under a file lock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from dshell.model import Event, Task, TaskState

KEEP_TASKS = 2000
KEEP_EVENTS = 2000
#: The raw job fields kept with a cached task: enough to find its output files later.
OUTPUT_FIELDS = frozenset(
    {
        "job_id",
        "array_job_id",
        "array_task_id",
        "name",
        "user_name",
        "batch_host",
        "nodes",
        "standard_output",
        "standard_error",
        "current_working_directory",
    }
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def cluster_dir(state_dir: Path, source: str, conf: str | None) -> Path:
    """A stable directory per cluster (source + slurm.conf), not per mount point."""
    import hashlib

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", source or "localhost").strip("_")[:40]
    digest = hashlib.sha256(f"{source}|{conf or ''}".encode()).hexdigest()[:10]
    return state_dir / "slurm" / f"{slug}-{digest}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    from dshell.paths import locked

    with locked(path.with_name(path.name + ".lock"), timeout=30, what="a Slurm cache"):
        yield


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _Tasks(msgspec.Struct):
    tasks: dict[str, Task] = {}


class TaskCache:
    """Final states of jobs, kept after Slurm purges them."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "tasks.json"

    def _load(self) -> _Tasks:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=_Tasks)
        except (FileNotFoundError, msgspec.DecodeError):
            return _Tasks()

    def get(self, task_id: str) -> Task | None:
        return self._load().tasks.get(task_id)

    def all(self) -> list[Task]:
        return list(self._load().tasks.values())

    def remember(self, task: Task) -> None:
        """Keep a terminal task (and the raw fields that locate its output); oldest go first."""
        if not task.state.terminal:
            return
        raw = {k: v for k, v in (task.raw or {}).items() if k in OUTPUT_FIELDS} or None
        with _locked(self.path):
            data = self._load()
            data.tasks[task.id] = msgspec.structs.replace(task, raw=raw, mount="")
            if len(data.tasks) > KEEP_TASKS:
                ordered = sorted(data.tasks.values(), key=lambda t: t.finished_at or "")
                data.tasks = {t.id: t for t in ordered[-KEEP_TASKS:]}
            _write(self.path, msgspec.json.encode(data))


class _Log(msgspec.Struct):
    seq: int = 0
    jobs: dict[str, list[str]] = {}  # id → signature (state, message, agent, name)
    events: list[Event] = []


def _signature(task: Task) -> list[str]:
    return [task.state.value, task.message or "", task.agent_id or "", task.name]


def _slim(task: Task) -> Task:
    """What an event carries about a task: identity and state, not the whole record."""
    return Task(
        id=task.id,
        name=task.name,
        state=task.state,
        backend=task.backend,
        agent_id=task.agent_id,
        hostname=task.hostname,
        instance=task.instance,
        exit_code=task.exit_code,
        signal=task.signal,
        reason=task.reason,
        message=task.message,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
    )


def diff(old: dict[str, list[str]], tasks: list[Task]) -> list[tuple[str, Task]]:
    """(event type, task) for every change between a stored snapshot and the current tasks."""
    changes: list[tuple[str, Task]] = []
    seen = set()
    for task in tasks:
        seen.add(task.id)
        before = old.get(task.id)
        if before is None:
            changes.append(("TASK_ADDED", task))
        elif before != _signature(task):
            changes.append(("TASK_UPDATED", task))
    for tid in sorted(set(old) - seen):
        state, _message, agent, name = (old[tid] + ["", "", "", ""])[:4]
        last = TaskState(state) if state in TaskState.__members__ else TaskState.LOST
        gone = Task(id=tid, name=name, state=last, agent_id=agent or None, backend="slurm")
        changes.append(("TASK_REMOVED", gone))
    return changes


class EventLog:
    """Sequence-numbered task events, shared by every dshell process on this machine."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "events.json"

    def _load(self) -> _Log:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=_Log)
        except (FileNotFoundError, msgspec.DecodeError):
            return _Log()

    def record(self, tasks: list[Task]) -> int:
        """Diff ``tasks`` (a full snapshot) against the last one; append events; the last seq."""
        with _locked(self.path):
            log = self._load()
            changes = diff(log.jobs, tasks)
            if not changes:
                return log.seq
            at = now()
            for kind, task in changes:
                log.seq += 1
                log.events.append(Event(seq=log.seq, type=kind, at=at, task=_slim(task)))
            log.events = log.events[-KEEP_EVENTS:]
            log.jobs = {t.id: _signature(t) for t in tasks}
            _write(self.path, msgspec.json.encode(log))
            return log.seq

    def after(self, seq: int) -> list[Event]:
        """Retained events with a sequence number above ``seq``."""
        return [e for e in self._load().events if e.seq > seq]

    def last_seq(self) -> int:
        return self._load().seq
