"""``exec``: run a command in a running task's sandbox, environment and cgroups.

Transport: a WebSocket (RFC 6455) on ``GET /v1/tasks/{id}/exec``. The client's first message
is a text message holding an :class:`dshell_local.api.ExecRequest`; after that every message
is binary, one frame each: a type byte (``api.FRAME_*``) then the payload. The engine sends
stdout/stderr frames, then one exit frame, then closes; the client sends stdin, stdin-EOF and
resize frames.

The command starts behind a gate: ``/bin/sh`` reads one line from its stdin before it execs
the command, and the engine writes that line only after the executor has moved the process
into the task's cgroups, so no instruction of the command runs outside them. With ``tty`` the
command gets a new pty as its controlling terminal (``setsid -c``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import WSMsgType, web
from dshell.errors import ConflictError
from dshell.model import TaskState

from . import api
from .execport import ExecutorError, ExecutorPort
from .routes import ctx_of, task_id_of
from .tasks import process_env

log = logging.getLogger(__name__)

GATE = 'read -r _ || exit 125; [ -t 0 ] && stty echo 2>/dev/null; exec "$@"'
FIRST_MESSAGE_TIMEOUT = 30.0
DRAIN = 1.0


class ExecProcess:
    """The exec'd process and its pipes (or pty)."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.proc = proc
        self.master = master

    @classmethod
    async def start(cls, req: api.ExecRequest, cwd: str, env: dict[str, str]) -> ExecProcess:
        argv = ["/bin/sh", "-c", GATE, "dshell-exec", *req.command]
        if not req.tty:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
            return cls(proc, None)
        master, slave = pty.openpty()
        try:
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO  # the gate line must not echo; the gate turns it back on
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            _set_size(master, req.rows, req.cols)
            setsid = shutil.which("setsid") or "setsid"
            proc = await asyncio.create_subprocess_exec(
                setsid, "-c", *argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env
            )
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(proc, master)

    def open_gate(self) -> None:
        self.write(b"\n")

    def write(self, data: bytes) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, data)
        elif self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(data)

    def close_stdin(self) -> None:
        if self.master is not None:
            self.write(b"\x04")
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, rows: int, cols: int) -> None:
        if self.master is not None:
            _set_size(self.master, rows, cols)

    async def on_frame(self, kind: int, payload: bytes) -> None:
        """A stdin, stdin-EOF or resize frame from the client."""
        if kind == api.FRAME_STDIN:
            self.write(payload)
        elif kind == api.FRAME_STDIN_EOF:
            self.close_stdin()
        elif kind == api.FRAME_RESIZE and len(payload) >= 4:
            self.resize(*api.unpack_resize(payload))

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def _pump_pipe(
    stream: asyncio.StreamReader | None, kind: int, ws: web.WebSocketResponse
) -> None:
    if stream is None:
        return
    while data := await stream.read(65536):
        await ws.send_bytes(bytes([kind]) + data)


async def _pump_pty(master: int, ws: web.WebSocketResponse) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the last holder of the slave side is gone
            data = b""
        if not data:
            loop.remove_reader(master)
        queue.put_nowait(data)

    loop.add_reader(master, readable)
    try:
        while data := await queue.get():
            await ws.send_bytes(bytes([api.FRAME_STDOUT]) + data)
    finally:
        loop.remove_reader(master)


async def pump_input(
    ws: web.WebSocketResponse, on_frame: Callable[[int, bytes], Awaitable[None]]
) -> None:
    """Hand each binary frame the client sends (type byte, payload) to ``on_frame``."""
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        await on_frame(msg.data[0], msg.data[1:])


async def _first_request(ws: web.WebSocketResponse) -> api.ExecRequest:
    msg = await ws.receive(timeout=FIRST_MESSAGE_TIMEOUT)
    if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        raise ConflictError("exec: expected the command as the first message")
    req = msgspec.json.decode(msg.data, type=api.ExecRequest)
    if not req.command:
        raise ConflictError("exec: a command is required")
    return req


async def send_error(ws: web.WebSocketResponse, code: str, message: str) -> None:
    body = api.encode(api.ErrorDetail(code, message))
    await ws.send_bytes(bytes([api.FRAME_ERROR]) + body)
    await ws.close()


async def exec_handler(request: web.Request) -> web.StreamResponse:
    """``GET /v1/tasks/{id}/exec`` (WebSocket)."""
    engine = ctx_of(request).engine
    task_id = task_id_of(request)
    engine.get(task_id)  # 404 before the upgrade for an unknown task
    rec = await engine.spawned(task_id)
    if rec is None or rec.task.state is not TaskState.RUNNING or not rec.task.sandbox:
        raise ConflictError(f"task {task_id} is not running")
    ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    try:
        req = await _first_request(ws)
    except (TimeoutError, ConflictError, msgspec.MsgspecError) as exc:
        await send_error(ws, "bad_request", str(exc) or "no command received")
        return ws
    env = process_env({**rec.task.env, **req.env})
    req.command = await engine.volumes.exec_command(rec, req.command)  # into its mount namespace
    try:
        proc = await ExecProcess.start(req, rec.task.sandbox, env)
    except OSError as exc:
        await send_error(ws, "exec_failed", f"cannot start {req.command[0]}: {exc}")
        return ws
    try:
        await _run(ws, proc, engine.executor, task_id)
    finally:
        proc.kill()
        proc.close()
    return ws


async def _run(
    ws: web.WebSocketResponse, proc: ExecProcess, executor: ExecutorPort, task_id: str
) -> None:
    try:
        await executor.join(task_id, proc.proc.pid)
    except ExecutorError as exc:
        proc.kill()
        await send_error(ws, "exec_failed", f"cannot join the task's cgroups: {exc}")
        return
    proc.open_gate()
    if proc.master is not None:
        pumps = [asyncio.ensure_future(_pump_pty(proc.master, ws))]
    else:
        pumps = [
            asyncio.ensure_future(_pump_pipe(proc.proc.stdout, api.FRAME_STDOUT, ws)),
            asyncio.ensure_future(_pump_pipe(proc.proc.stderr, api.FRAME_STDERR, ws)),
        ]
    inputs = asyncio.ensure_future(pump_input(ws, proc.on_frame))
    code = await proc.proc.wait()
    # a background child may keep the output open: drain briefly, then stop reading
    _done, pending = await asyncio.wait(pumps, timeout=DRAIN)
    for pump in [*pending, inputs]:
        pump.cancel()
    sig = -code if code < 0 else None
    status = api.ExitStatus(
        status=128 + sig if sig else code, exit_code=None if sig else code, signal=sig
    )
    if not ws.closed:
        await ws.send_bytes(bytes([api.FRAME_EXIT]) + api.encode(status))
        await ws.close()
