"""An in-process fake of the executor (ExecutorPort) for the engine's unit tests.

It spawns real processes with asyncio (new session, output into the sandbox files) and keeps
the executor's contract: spawn is idempotent by task id, exits are reported by the callback and
stay listed until acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

from dshell_local.execport import (
    ExecutorError,
    ExitReport,
    Spawned,
    SpawnSpec,
    TaskInfo,
    Usage,
)


class FakeExecutor:
    def __init__(self) -> None:
        self.tasks: dict[str, TaskInfo] = {}
        self.spawns: Counter[str] = Counter()
        self.acked: list[str] = []
        self.swept: list[str] = []
        self.signals: list[tuple[str, int]] = []
        self.joined: list[tuple[str, int]] = []
        self.fail_spawn: set[str] = set()
        self.hold_answers: asyncio.Event | None = None  # spawns run; their answer waits for it
        self._exit_cb: Callable[[ExitReport], None] | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    async def hello(self) -> dict[str, Any]:
        return {
            "executor_pid": os.getpid(),
            "version": "fake",
            "boot_id": "fake",
            "isolation": {"kind": "none", "controllers": [], "detail": "fake executor"},
        }

    async def _spawn(self, spec: SpawnSpec) -> Spawned:
        if spec.task_id in self.tasks:
            info = self.tasks[spec.task_id]
            return Spawned(pid=info.pid or 0, start_time=info.start_time)
        if spec.task_id in self.fail_spawn:
            raise ExecutorError("spawn failed: injected")
        argv = ["/bin/sh", "-c", *spec.argv] if spec.shell else spec.argv
        with open(spec.stdout, "ab") as out, open(spec.stderr, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=out,
                stderr=err,
                stdin=asyncio.subprocess.DEVNULL,
                cwd=spec.cwd,
                env=spec.env,
                start_new_session=True,
            )
        self.spawns[spec.task_id] += 1
        self.tasks[spec.task_id] = TaskInfo(
            task_id=spec.task_id, pid=proc.pid, start_time=1.0, running=True
        )
        watcher = asyncio.ensure_future(self._watch(spec.task_id, proc))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return Spawned(pid=proc.pid, start_time=1.0)

    async def _watch(self, task_id: str, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        info = self.tasks[task_id]
        info.running = False
        if code < 0:
            info.signal, info.exit_code = -code, None
        else:
            info.exit_code = code
        info.finished_at = "2026-01-01T00:00:00Z"
        if self._exit_cb is not None:
            self._exit_cb(
                ExitReport(
                    task_id=task_id,
                    pid=info.pid,
                    exit_code=info.exit_code,
                    signal=info.signal,
                    finished_at=info.finished_at,
                )
            )

    async def spawn_batch(self, specs: list[SpawnSpec]) -> list[Spawned | ExecutorError]:
        out: list[Spawned | ExecutorError] = []
        for spec in specs:
            try:
                out.append(await self._spawn(spec))
            except (ExecutorError, OSError) as exc:
                out.append(ExecutorError(str(exc)))
        if self.hold_answers is not None:
            await self.hold_answers.wait()
        return out

    async def signal(self, task_id: str, sig: int) -> None:
        self.signals.append((task_id, sig))
        info = self.tasks.get(task_id)
        if info and info.running and info.pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info.pid, sig)

    async def sweep(self, task_id: str) -> None:
        self.swept.append(task_id)
        await self.signal(task_id, signal.SIGKILL)

    async def list_tasks(self) -> list[TaskInfo]:
        return list(self.tasks.values())

    async def ack(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            info = self.tasks.get(task_id)
            if info is not None and not info.running:
                del self.tasks[task_id]
                self.acked.append(task_id)

    async def stats(self) -> list[Usage]:
        return [
            Usage(task_id=t, cpu_ns=0, rss_bytes=1 << 20, nprocs=1)
            for t, i in self.tasks.items()
            if i.running
        ]

    async def join(self, task_id: str, pid: int) -> None:
        self.joined.append((task_id, pid))

    async def write_stdin(self, task_id: str, data: str) -> int:
        raise ExecutorError(f"task {task_id} has no terminal (the fake has no ptys)")

    async def resize(self, task_id: str, rows: int, cols: int) -> None:
        raise ExecutorError(f"task {task_id} has no terminal (the fake has no ptys)")

    def on_exit(self, callback: Callable[[ExitReport], None]) -> None:
        self._exit_cb = callback

    def on_lost(self, callback: Callable[[], None]) -> None:
        pass

    async def close(self) -> None:
        for info in self.tasks.values():
            if info.running and info.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(info.pid, signal.SIGKILL)
        await asyncio.gather(*self._watchers, return_exceptions=True)
