"""Adapts the executor's asyncio client (``executor/client.py``) to :class:`ExecutorPort`.

The client reconnects by itself (starting a new executor, which re-adopts the tasks) and runs
``on_connect`` after every reconnection; the engine then reconciles again, because exits sent
while the connection was down are not replayed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from dshell.errors import BackendError, UnreachableError

from .execport import (
    CheckOutcome,
    ExecutorError,
    ExecutorGone,
    ExitReport,
    Spawned,
    SpawnSpec,
    TaskInfo,
    Usage,
)
from .executor import protocol
from .executor.client import ExecutorClient
from .executor.client import ExecutorError as ClientError

log = logging.getLogger(__name__)

# run_check errors that mean "the check failed in the task", not "the executor could not try"
_CHECK_NOT_STARTED = frozenset({protocol.SPAWN_FAILED, protocol.CGROUP_FAILED})


def _err(exc: BackendError) -> ExecutorError:
    if isinstance(exc, UnreachableError):
        return ExecutorGone(str(exc))
    return ExecutorError(str(exc))


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """The executor client's errors as the port's (gone vs failed)."""
    try:
        yield
    except BackendError as exc:
        raise _err(exc) from exc


class ClientPort:
    """ExecutorPort over :class:`ExecutorClient`."""

    def __init__(self) -> None:
        self.client: ExecutorClient | None = None
        self._exit_cb: Callable[[ExitReport], None] | None = None
        self._lost_cb: Callable[[], None] | None = None
        self._closed = False

    @property
    def _c(self) -> ExecutorClient:
        if self.client is None:
            raise ExecutorGone("not connected to the executor")
        return self.client

    def _on_exited(self, event: protocol.ExitedEvent) -> None:
        if self._exit_cb is not None:
            self._exit_cb(
                ExitReport(
                    task_id=event.task_id,
                    pid=event.pid,
                    exit_code=event.exit_code,
                    signal=event.signal,
                    oom=event.oom,
                    lost=event.lost,
                    finished_at=event.finished_at,
                )
            )

    def _on_lost(self) -> None:
        if self._lost_cb is not None and not self._closed:
            log.warning("lost the connection to the executor")
            self._lost_cb()

    async def hello(self) -> dict[str, Any]:
        with _mapped():
            hello = await self._c.hello()
        return dict(msgspec.to_builtins(hello))

    async def spawn_batch(self, specs: list[SpawnSpec]) -> list[Spawned | ExecutorError]:
        items = [
            protocol.SpawnSpec(
                task_id=s.task_id,
                argv=s.argv,
                env=s.env,
                cwd=s.cwd,
                stdout=s.stdout,
                stderr=s.stderr,
                shell=s.shell,
                limits=protocol.Limits(
                    mem_mb=int(s.limits["mem_mb"]) if "mem_mb" in s.limits else None,
                    cpus=s.limits.get("cpus"),
                    pids=int(s.limits["pids"]) if "pids" in s.limits else None,
                ),
                tty=s.tty,
            )
            for s in specs
        ]
        with _mapped():
            results = await self._c.spawn_batch(items)
        out: list[Spawned | ExecutorError] = []
        for r in results:
            if r.ok and r.pid is not None:
                out.append(Spawned(pid=r.pid, start_time=r.start_time))
            else:
                out.append(ExecutorError(f"{r.error}: {r.message}"))
        return out

    async def signal(self, task_id: str, sig: int) -> None:
        with _mapped():
            await self._c.signal(task_id, sig)

    async def sweep(self, task_id: str) -> None:
        with _mapped():
            await self._c.sweep(task_id)

    async def list_tasks(self) -> list[TaskInfo]:
        with _mapped():
            infos = await self._c.list_tasks()
        return [msgspec.convert(msgspec.to_builtins(i), TaskInfo) for i in infos]

    async def ack(self, task_ids: list[str]) -> None:
        with _mapped():
            await self._c.ack(task_ids)

    async def stats(self) -> list[Usage]:
        with _mapped():
            rows = await self._c.stats()
        return [
            Usage(task_id=r.task_id, cpu_ns=r.cpu_ns, rss_bytes=r.rss_bytes, nprocs=r.nprocs)
            for r in rows
        ]

    async def join(self, task_id: str, pid: int) -> None:
        with _mapped():
            await self._c.join(task_id, pid)

    async def run_check(
        self, task_id: str, command: str, env: dict[str, str], cwd: str, timeout: float
    ) -> CheckOutcome:
        try:
            with _mapped():
                res = await self._c.run_check(task_id, command, env, cwd, timeout)
        except ExecutorError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.error in _CHECK_NOT_STARTED:
                return CheckOutcome(error=str(cause))
            raise
        return CheckOutcome(exit_code=res.exit_code, signal=res.signal, timed_out=res.timed_out)

    async def write_stdin(self, task_id: str, data: str) -> int:
        with _mapped():
            return await self._c.write_stdin(task_id, data)

    async def resize(self, task_id: str, rows: int, cols: int) -> None:
        with _mapped():
            await self._c.resize(task_id, rows, cols)

    def on_exit(self, callback: Callable[[ExitReport], None]) -> None:
        self._exit_cb = callback

    def on_lost(self, callback: Callable[[], None]) -> None:
        self._lost_cb = callback

    async def close(self) -> None:
        self._closed = True
        if self.client is not None:
            await self.client.close()


async def connect_executor(
    runtime_dir: Path,
    cgroup_name: str,
    log_path: Path,
    isolation: str = "auto",
    idle_exit: float = 30.0,
) -> ClientPort:
    """Connect to this runtime dir's executor, starting it if needed (``isolation``: auto,
    rlimit, or none, which the executor knows as rlimit: it always applies rlimits)."""
    port = ClientPort()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with _mapped():
        port.client = await ExecutorClient.connect(
            str(runtime_dir),
            cgroup_name,
            str(log_path),
            True,
            idle_exit=idle_exit,
            isolation="auto" if isolation == "auto" else "rlimit",
            on_exit=port._on_exited,
        )
        port.client.on_lost(port._on_lost)
    return port
