"""Interactive attach: a terminal on a running ``tty`` task (``run -it``).

Transport: ``GET /v1/tasks/{id}/attach?interactive=1`` upgraded to a WebSocket with the exec
framing (:mod:`dshell_local.execsession`), minus exec's first text message. The task's pty is
held by the executor, which copies its output into the task's ``stdout`` file: the engine
follows that file from offset 0 (nothing printed before the attach is lost) and sends stdout
frames; stdin frames go to the executor's ``write_stdin``, stdin-EOF sends ^D, resize frames
go to its ``resize``. When the task is terminal and its output read, the engine sends the exit
frame (the task's shell-style status) and closes. Input sent before the task runs waits.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from pathlib import Path

from aiohttp import web
from dshell.errors import ConflictError
from dshell.model import Task, TaskState

from . import api
from .engine import Engine
from .execport import ExecutorError
from .execsession import pump_input
from .routes import ctx_of, task_id_of
from .streams import POLL, exit_frame, follow_outputs

log = logging.getLogger(__name__)

_NOT_STARTED = (TaskState.STAGING, TaskState.STARTING)


class TaskTerminal:
    """Client frames → the executor's ``write_stdin`` / ``resize`` for one tty task."""

    def __init__(self, engine: Engine, task_id: str) -> None:
        self.engine = engine
        self.task_id = task_id
        self.started = asyncio.Event()
        # the executor takes text: keep a multi-byte character split across frames whole
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def on_frame(self, kind: int, payload: bytes) -> None:
        await self.started.wait()
        executor = self.engine.executor
        try:
            if kind == api.FRAME_STDIN:
                text = self._decoder.decode(payload)
                if text:
                    await executor.write_stdin(self.task_id, text)
            elif kind == api.FRAME_STDIN_EOF:
                await executor.write_stdin(self.task_id, "\x04")
            elif kind == api.FRAME_RESIZE and len(payload) >= 4:
                await executor.resize(self.task_id, *api.unpack_resize(payload))
        except ExecutorError as exc:  # typically: the task has just exited
            log.debug("tty input for %s dropped: %s", self.task_id, exc)


async def _wait_started(engine: Engine, task_id: str) -> Task:
    task = engine.get(task_id)
    while task.state in _NOT_STARTED:
        await asyncio.sleep(POLL)
        task = engine.get(task_id)
    return task


async def _send_output(ws: web.WebSocketResponse, term: TaskTerminal) -> None:
    """Wait for the task to run, then send its terminal output until it ends, then exit."""
    engine, task_id = term.engine, term.task_id
    task = await _wait_started(engine, task_id)
    term.started.set()
    try:
        if task.sandbox:
            offsets = {api.FRAME_STDOUT: 0}
            async for kind, data in follow_outputs(engine, task_id, Path(task.sandbox), offsets):
                await ws.send_bytes(bytes([kind]) + data)
        await ws.send_bytes(bytes([api.FRAME_EXIT]) + exit_frame(engine.get(task_id)))
    except ConnectionResetError:
        return


def _check_attachable(engine: Engine, task_id: str) -> None:
    task = engine.get(task_id)  # 404 for an unknown task
    rec = engine.records.get(task_id)
    if rec is None or task.state.terminal:
        raise ConflictError(f"task {task_id} has ended ({task.state.value})")
    if not rec.rt.tty:
        raise ConflictError(
            f"task {task_id} has no terminal: only a task launched with tty (run -it) can be "
            "attached interactively"
        )


async def attach_interactive(request: web.Request) -> web.StreamResponse:
    """``GET /v1/tasks/{id}/attach?interactive=1`` (WebSocket)."""
    engine = ctx_of(request).engine
    task_id = task_id_of(request)
    _check_attachable(engine, task_id)
    ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    term = TaskTerminal(engine, task_id)
    output = asyncio.ensure_future(_send_output(ws, term))
    inputs = asyncio.ensure_future(pump_input(ws, term.on_frame))
    try:
        # the output ends with the task; the input ends when the client goes away
        await asyncio.wait({output, inputs}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for job in (output, inputs):
            job.cancel()
        for job in (output, inputs):
            with contextlib.suppress(asyncio.CancelledError):
                await job
    if not ws.closed:
        await ws.close()
    return ws
