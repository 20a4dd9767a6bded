"""The processes of a multi-process (Thermos) task, read from its sandbox.

A runner (the embedded engine's ``dshell_local/thermos.py``, or any backend's equivalent)
keeps ``.dshell/processes.json`` in the task's sandbox; it is read through the backend's file
API, so it works for running and finished tasks alike. A backend without sandbox files, or a
task without that file, simply has no processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..backend import Capability
from ..errors import NotFoundError, UnsupportedError, UsageError
from ..model import TERMINAL_STATES
from .refs import resolve_tasks

if TYPE_CHECKING:
    from ..backend import Backend
    from ..model import Task
    from ..session import Session

PROCESSES_FILE = ".dshell/processes.json"
_LIVE_STAGES = ("ACTIVE", "CLEANING", "FINALIZING")  # the runner had not finished


class TaskProcess(msgspec.Struct, kw_only=True):
    """One process of a task, with Thermos' process states: WAITING, RUNNING, SUCCESS,
    FAILED, KILLED, LOST."""

    name: str
    state: str
    final: bool = False
    daemon: bool = False
    ephemeral: bool = False
    runs: int = 0
    failures: int = 0
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None


class _ProcessesFile(msgspec.Struct):
    state: str = ""
    processes: list[TaskProcess] = []


def task_processes(backend: Backend, task: Task) -> list[TaskProcess]:
    """The processes of ``task`` (empty when it has none or they cannot be read).

    When the task has ended but its runner had not (it was SIGKILLed before writing its end),
    a process still RUNNING in the file is LOST, as Thermos says of a process whose
    coordinator died."""
    if Capability.FILES not in backend.capabilities:
        return []
    try:
        data = b"".join(backend.read_file(task.id, PROCESSES_FILE))
        doc = msgspec.json.decode(data, type=_ProcessesFile)
    except (NotFoundError, UnsupportedError, UsageError, msgspec.DecodeError):
        return []
    if task.state in TERMINAL_STATES and doc.state in _LIVE_STAGES:
        for proc in doc.processes:
            if proc.state == "RUNNING":
                proc.state, proc.pid = "LOST", None
    return doc.processes


def inspect(
    session: Session, ref: str, *, with_processes: bool = True
) -> tuple[Task, list[TaskProcess]]:
    """One task (as ``tasks.inspect``) and, unless told not to read them, its processes."""
    tref = resolve_tasks(session, [ref], one=True)[0]
    task = tref.backend.get_task(tref.task.id)
    task.mount = tref.mount.target
    task.backend = tref.mount.type
    return task, task_processes(tref.backend, task) if with_processes else []
