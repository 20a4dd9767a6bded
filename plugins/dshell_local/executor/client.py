"""The engine's asyncio client of the executor.

    client = await ExecutorClient.connect(runtime_dir, "dshell", log_path, on_exit=handle)
    res = await client.spawn(SpawnSpec(task_id=..., argv=[...], env=..., cwd=..., ...))
    async for event in client.events(): ...

``connect`` starts the executor when nobody answers (``python -m dshell_local.executor
--detach``, which returns once the executor listens); two engines racing to start it are
serialized by the executor's lock: the loser's executor exits 3 and both connect to the winner.

If the connection drops (an executor crash, or an idle exit), the next request reconnects,
starting a new executor (which re-adopts the tasks), and is retried once: every op is safe to
repeat (``spawn`` is idempotent by task id) except ``write_stdin``, which is not retried. Events
sent while disconnected are not replayed: ``on_connect`` runs after every (re)connection, so the
engine can call ``list_tasks()`` there to learn the exits it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from dshell.errors import BackendError, UnreachableError

from .protocol import (
    MAX_LINE,
    AckResult,
    CgroupPathsResult,
    Empty,
    ExitedEvent,
    HelloResult,
    JoinResult,
    ListResult,
    RunCheckResult,
    SignalResult,
    SpawnBatchResult,
    SpawnItem,
    SpawnResult,
    SpawnSpec,
    StatsResult,
    SweepResult,
    TaskInfo,
    TaskStats,
    WriteStdinResult,
    encode_request,
)

T = TypeVar("T", bound=msgspec.Struct)
_CONNECT_ERRORS = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError)


class ExecutorError(BackendError):
    """The executor refused a request (``error`` is the protocol error code)."""

    def __init__(self, code: str, message: str, errno: int | None = None) -> None:
        super().__init__(f"executor: {message}")
        self.error = code
        self.errno = errno


class ExecutorUnavailable(UnreachableError):
    """The executor could not be reached or started."""


RECONNECT_ATTEMPTS = 5


class _Disconnected(Exception):
    """The connection dropped while a request was in flight."""


class _Link:
    """One socket connection: its writer, its requests in flight and its reader task."""

    __slots__ = ("dead", "pending", "task", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.dead = False


class ExecutorClient:
    """One connection to the executor of a runtime dir, with reconnection."""

    def __init__(
        self,
        runtime_dir: str,
        start_args: list[str] | None,
        timeout: float,
        on_exit: Callable[[ExitedEvent], None] | None,
        on_connect: Callable[[ExecutorClient], Awaitable[None]] | None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.sock_path = os.path.join(runtime_dir, "executor.sock")
        self._start_args = start_args  # None: never start an executor
        self._timeout = timeout
        self._on_exit = on_exit
        self._on_connect = on_connect
        self._on_lost: Callable[[], None] | None = None
        self._ids = itertools.count(1)
        self._queues: list[asyncio.Queue[ExitedEvent | None]] = []
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.info: HelloResult | None = None  # the last hello's answer
        self.connections = 0
        self._start_error = ""

    @classmethod
    async def connect(
        cls,
        runtime_dir: str,
        cgroup_name: str,
        log_path: str | None,
        start_if_missing: bool = True,
        *,
        idle_exit: float = 30.0,
        isolation: str = "auto",
        timeout: float = 30.0,
        on_exit: Callable[[ExitedEvent], None] | None = None,
        on_connect: Callable[[ExecutorClient], Awaitable[None]] | None = None,
    ) -> ExecutorClient:
        """Connect (starting the executor if needed and allowed) and say hello."""
        args = ["--runtime-dir", runtime_dir, "--cgroup-name", cgroup_name,
                "--idle-exit", str(idle_exit), "--isolation", isolation]  # fmt: skip
        if log_path:
            args += ["--log", log_path]
        client = cls(runtime_dir, args if start_if_missing else None, timeout, on_exit, on_connect)
        for attempt in range(1, RECONNECT_ATTEMPTS + 1):
            try:
                await client._ensure_connected()
                return client
            except _Disconnected:
                if attempt == RECONNECT_ATTEMPTS:
                    raise ExecutorUnavailable("executor dropped the connection at hello") from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ connection

    async def _ensure_connected(self) -> None:
        async with self._lock:
            if self._link is not None:
                return
            if self._closed:
                raise ExecutorUnavailable("executor client is closed")
            reader, writer = await self._open()
            link = self._link = _Link(writer)
            link.task = asyncio.create_task(self._read_loop(link, reader))
            self.connections += 1
            raw = await self._call("hello", {"engine_pid": os.getpid()})
            self.info = msgspec.convert(raw, HelloResult)
        if self._on_connect is not None:
            await self._on_connect(self)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        started = False
        delay = 0.005
        while True:
            try:
                return await asyncio.open_unix_connection(self.sock_path, limit=MAX_LINE)
            except _CONNECT_ERRORS as exc:
                if self._start_args is None:
                    raise ExecutorUnavailable(f"no executor at {self.sock_path}: {exc}") from None
                if not started:
                    await self._start_executor()
                    started = True
                    deadline = loop.time() + self._timeout  # a slow start is not a dead one
                    continue
                if loop.time() >= deadline:
                    why = f": {self._start_error[-500:]}" if self._start_error else ""
                    raise ExecutorUnavailable(
                        f"executor at {self.sock_path} did not answer{why}"
                    ) from None
            await asyncio.sleep(delay)  # the winner of a start race is still getting ready
            delay = min(delay * 2, 0.1)

    async def _start_executor(self) -> None:
        assert self._start_args is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dshell_local.executor", "--detach", *self._start_args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=_child_env(),
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self._timeout)
        except TimeoutError:
            raise ExecutorUnavailable("the executor did not start in time") from None
        # Not trusting proc.returncode: a subreaping engine may reap the launcher itself.
        # 0 = started, 3 = another one won the race; either way the socket decides.
        self._start_error = err.decode(errors="replace").strip()

    async def _read_loop(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                self._dispatch(link, msgspec.json.decode(line))
        except (OSError, ValueError, msgspec.DecodeError):
            pass
        finally:
            self._drop(link)

    def _dispatch(self, link: _Link, msg: dict[str, Any]) -> None:
        if "event" in msg:
            if msg["event"] != "exited":
                return
            event = msgspec.convert(msg, ExitedEvent)
            if self._on_exit is not None:
                self._on_exit(event)
            for q in self._queues:
                q.put_nowait(event)
            return
        fut = link.pending.pop(msg.get("id", -1), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _drop(self, link: _Link) -> None:
        """Tear down one connection (once): fail its requests, let the next one reconnect."""
        if link.dead:
            return
        link.dead = True
        if self._link is link:
            self._link = None
        link.writer.close()
        pending, link.pending = link.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(_Disconnected())
        if not self._closed and self._on_lost is not None:
            self._on_lost()

    # ------------------------------------------------------------ requests

    async def _call(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        link = self._link
        if link is None:
            raise _Disconnected()
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.pending[req_id] = fut
        try:
            link.writer.write(encode_request(req_id, op, fields))
            await link.writer.drain()
        except OSError:
            self._drop(link)
            raise _Disconnected() from None
        msg = await fut
        if not msg.get("ok"):
            raise ExecutorError(
                msg.get("error", "INTERNAL"), msg.get("message", ""), msg.get("errno")
            )
        return msg

    async def request(
        self, op: str, fields: dict[str, Any], result: type[T], retry: bool = True
    ) -> T:
        """Send one request and decode its result; reconnects (and retries once) on a drop."""
        # A crashed executor can still accept a connection or two while the kernel tears it
        # down, and a drop can come during the reconnect's own hello: retry a few times.
        attempts = RECONNECT_ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                await self._ensure_connected()
                return msgspec.convert(await self._call(op, fields), result)
            except _Disconnected:
                if attempt == attempts:
                    raise ExecutorUnavailable(f"executor connection lost during {op}") from None
                await asyncio.sleep(0.02 * attempt)
        raise AssertionError("unreachable")

    async def spawn(self, spec: SpawnSpec) -> SpawnResult:
        """Start a task (idempotent by task id)."""
        return await self.request("spawn", msgspec.structs.asdict(spec), SpawnResult)

    async def spawn_batch(self, specs: list[SpawnSpec]) -> list[SpawnItem]:
        """Start several tasks in one round trip; one item per spec, in order."""
        res = await self.request("spawn_batch", {"tasks": specs}, SpawnBatchResult)
        return res.results

    async def signal(self, task_id: str, sig: int | str) -> bool:
        """Signal the task's process group; False if it had already exited."""
        res = await self.request("signal", {"task_id": task_id, "signal": sig}, SignalResult)
        return res.delivered

    async def sweep(self, task_id: str) -> SweepResult:
        """SIGKILL every process of the task until none is left."""
        return await self.request("sweep", {"task_id": task_id}, SweepResult)

    async def list_tasks(self) -> list[TaskInfo]:
        """Every task the executor knows, exited ones until acknowledged."""
        return (await self.request("list", {}, ListResult)).tasks

    async def ack(self, task_ids: list[str]) -> AckResult:
        """Forget exited tasks (and remove their cgroups)."""
        return await self.request("ack", {"task_ids": task_ids}, AckResult)

    async def stats(self) -> list[TaskStats]:
        """Usage of each running task."""
        return (await self.request("stats", {}, StatsResult)).tasks

    async def cgroup_paths(self, task_id: str) -> list[str]:
        """The task's cgroup directories (empty without cgroups)."""
        return (await self.request("cgroup_paths", {"task_id": task_id}, CgroupPathsResult)).paths

    async def join(self, task_id: str, pid: int) -> list[str]:
        """Move process ``pid`` into the task's cgroups; returns the controllers joined."""
        res = await self.request("join", {"task_id": task_id, "pid": pid}, JoinResult)
        return res.controllers

    async def run_check(
        self, task_id: str, command: str, env: dict[str, str], cwd: str, timeout: float
    ) -> RunCheckResult:
        """Run a COMMAND check in the task's cgroups; answered when it has ended (at the latest
        at ``timeout``). Not retried after a reconnect: a check is not run twice."""
        fields = {"task_id": task_id, "command": command, "env": env, "cwd": cwd,
                  "timeout": timeout}  # fmt: skip
        return await self.request("run_check", fields, RunCheckResult, retry=False)

    async def write_stdin(self, task_id: str, data: str) -> int:
        """Queue text for a tty task's terminal (not retried after a reconnect)."""
        fields = {"task_id": task_id, "data": data}
        return (await self.request("write_stdin", fields, WriteStdinResult, retry=False)).written

    async def resize(self, task_id: str, rows: int, cols: int) -> None:
        """Set a tty task's window size."""
        await self.request("resize", {"task_id": task_id, "rows": rows, "cols": cols}, Empty)

    async def hello(self) -> HelloResult:
        """Say hello again (reconnecting if needed): executor pid, version, isolation."""
        self.info = await self.request("hello", {"engine_pid": os.getpid()}, HelloResult)
        return self.info

    # ------------------------------------------------------------ events and lifetime

    def on_exit(self, callback: Callable[[ExitedEvent], None]) -> None:
        """Call ``callback`` for every ``exited`` event (replaces the previous callback)."""
        self._on_exit = callback

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection drops (the next request reconnects)."""
        self._on_lost = callback

    def events(self) -> EventStream:
        """Every ``exited`` event from this call on (subscribed at once, so that an exit cannot
        slip between a spawn and the first ``__anext__``), until ``close()``."""
        return EventStream(self._queues)

    async def close(self) -> None:
        """Close the connection (the executor keeps running its tasks)."""
        self._closed = True
        for q in self._queues:
            q.put_nowait(None)
        link, self._link = self._link, None
        if link is None:
            return
        self._drop(link)
        if link.task is not None:
            link.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.task


class EventStream:
    """An async iterator of ``exited`` events; ``close()`` unsubscribes."""

    def __init__(self, registry: list[asyncio.Queue[ExitedEvent | None]]) -> None:
        self._registry = registry
        self._queue: asyncio.Queue[ExitedEvent | None] = asyncio.Queue()
        registry.append(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ExitedEvent:
        event = await self._queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        if self._queue in self._registry:
            self._registry.remove(self._queue)


def _child_env() -> dict[str, str]:
    """Our environment, plus where ``dshell_local`` and ``dshell`` were imported from (an
    uninstalled checkout), so that ``-m dshell_local.executor`` runs this very code."""
    import dshell

    env = dict(os.environ)
    plugins = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    core = os.path.dirname(os.path.dirname(os.path.abspath(dshell.__file__)))
    paths = [plugins, core, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
