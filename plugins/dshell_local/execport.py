"""What the engine needs from the per-host executor, as a typed interface.

The executor (``dshell_local.executor``) is a separate process that survives the engine; the
engine reaches it through :class:`ExecutorPort`. :mod:`dshell_local.execadapter` adapts the
executor's asyncio client to this interface, and the unit tests use an in-process fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec


class ExecutorError(Exception):
    """The executor refused or failed an operation."""


class ExecutorGone(ExecutorError):
    """The connection to the executor is lost."""


class SpawnSpec(msgspec.Struct, omit_defaults=True, kw_only=True):
    task_id: str
    argv: list[str]
    shell: bool = False
    env: dict[str, str] = {}
    cwd: str
    stdout: str
    stderr: str
    limits: dict[str, float] = {}  # mem_mb, cpus, pids (the executor's Limits)
    tty: bool = False


class Spawned(msgspec.Struct, kw_only=True):
    pid: int
    start_time: float | None = None


class ExitReport(msgspec.Struct, kw_only=True):
    task_id: str
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    oom: bool = False
    lost: bool = False
    finished_at: str | None = None


class TaskInfo(msgspec.Struct, kw_only=True):
    """One entry of the executor's ``list``."""

    task_id: str
    pid: int | None = None
    start_time: float | None = None
    running: bool = False
    exit_code: int | None = None
    signal: int | None = None
    oom: bool = False
    lost: bool = False
    finished_at: str | None = None


class CheckOutcome(msgspec.Struct, kw_only=True):
    """How a ``run_check`` command ended: its exit code, or the signal that killed it
    (``timed_out``: killed at the timeout); ``error`` when it could not be started in the task
    (its sandbox is gone, its pids limit is reached...)."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    error: str | None = None


class Usage(msgspec.Struct, kw_only=True):
    task_id: str
    cpu_ns: int = 0
    rss_bytes: int = 0
    nprocs: int = 0


class ExecutorPort(Protocol):
    """The executor operations the engine uses (all idempotent where it matters)."""

    async def hello(self) -> dict[str, Any]:
        """``{executor_pid, version, boot_id, isolation{kind, controllers, detail}}``."""
        ...

    async def spawn_batch(self, specs: list[SpawnSpec]) -> list[Spawned | ExecutorError]:
        """Spawn each task once (idempotent by task id): an existing one is reported as is."""
        ...

    async def signal(self, task_id: str, sig: int) -> None:
        """Send one signal to the task's session."""
        ...

    async def sweep(self, task_id: str) -> None:
        """SIGKILL every process in the task's cgroup until it is empty."""
        ...

    async def list_tasks(self) -> list[TaskInfo]: ...

    async def ack(self, task_ids: list[str]) -> None:
        """Forget these exited tasks (their exits are persisted); any process left in their
        cgroups is killed first, so their ports are free afterwards."""
        ...

    async def stats(self) -> list[Usage]: ...

    async def join(self, task_id: str, pid: int) -> None:
        """Move ``pid`` into the task's cgroups (exec)."""
        ...

    async def run_check(
        self, task_id: str, command: str, env: dict[str, str], cwd: str, timeout: float
    ) -> CheckOutcome:
        """Run ``/bin/sh -c command`` in the running task's cgroups, own process group, ``env``
        and ``cwd``; its group is SIGKILLed at ``timeout`` s. Raises ExecutorError when the task
        is not running there or the executor cannot be reached (the check was not run)."""
        ...

    async def write_stdin(self, task_id: str, data: str) -> int:
        """Queue text for a ``tty`` task's terminal (not retried); bytes accepted."""
        ...

    async def resize(self, task_id: str, rows: int, cols: int) -> None:
        """Set a ``tty`` task's window size."""
        ...

    def on_exit(self, callback: Callable[[ExitReport], None]) -> None:
        """Register the callback for the executor's unsolicited ``exited`` events."""
        ...

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Register the callback for a lost connection."""
        ...

    async def close(self) -> None: ...
