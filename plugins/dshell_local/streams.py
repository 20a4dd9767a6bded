"""Streaming endpoints: file reads (``follow``), attach frames, events and stats (NDJSON).

Responses are chunked. A follower polls the file it reads (every ``POLL`` seconds while it is
at the end) and stops at the end of the file once the task is terminal. Event streams send a
blank line as a keep-alive when nothing happened for ``KEEPALIVE`` seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from aiohttp import web
from dshell.errors import NotFoundError, UsageError, status_from_wait
from dshell.model import Task

from . import api
from .engine import Engine
from .routes import ctx_of, task_id_of
from .server import query_flag, query_float, query_int

POLL = 0.1
CHUNK = 64 * 1024
KEEPALIVE = 15.0
OUTPUTS = ("stdout", "stderr")
_FILES = {api.FRAME_STDOUT: "stdout", api.FRAME_STDERR: "stderr"}


async def _open_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


def _read_at(path: Path, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)
    except FileNotFoundError:
        return b""


async def read_file(request: web.Request) -> web.StreamResponse:
    """``GET /v1/tasks/{id}/files/read?path=&offset=&length=&follow=``: raw bytes."""
    engine = ctx_of(request).engine
    task_id = task_id_of(request)
    rel = request.query.get("path", "stdout")
    follow = query_flag(request, "follow")
    if follow or rel in OUTPUTS:
        await _wait_launched(request, task_id)
    try:
        path, _size = engine.sandboxes.open_file(task_id, rel)
    except NotFoundError:
        if rel not in OUTPUTS:
            raise
        path = engine.sandboxes.resolve(task_id, rel)  # not written yet: empty so far
    offset = query_int(request, "offset", 0)
    length = query_int(request, "length", -1)
    if offset < 0:
        raise UsageError("offset must not be negative")
    resp = await _open_stream(request, "application/octet-stream")
    sent = 0
    while length < 0 or sent < length:
        want = CHUNK if length < 0 else min(CHUNK, length - sent)
        data = _read_at(path, offset, want)
        if data:
            await resp.write(data)
            offset += len(data)
            sent += len(data)
            continue
        if not follow or engine.get(task_id).state.terminal:
            if not _read_at(path, offset, 1):  # one last look after the task ended
                break
            continue
        await asyncio.sleep(POLL)
    await resp.write_eof()
    return resp


async def _wait_launched(request: web.Request, task_id: str) -> Task:
    engine = ctx_of(request).engine
    task = engine.get(task_id)
    # the sandbox path is known at placement; the directory is made by a file-system thread
    # just before the spawn
    while not (task.sandbox and os.path.isdir(task.sandbox)) and not task.state.terminal:
        await asyncio.sleep(POLL)
        task = engine.get(task_id)
    return task


async def follow_outputs(
    engine: Engine, task_id: str, sandbox: Path, offsets: dict[int, int]
) -> AsyncIterator[tuple[int, bytes]]:
    """``(frame kind, bytes)`` of the output files in ``offsets`` (stdout/stderr frame kinds)
    from those offsets, as they are written, until the task is terminal and all is read."""
    ended = False
    while True:
        moved = False
        for kind, offset in offsets.items():
            data = _read_at(sandbox / _FILES[kind], offset, CHUNK)
            if data:
                yield kind, data
                offsets[kind] += len(data)
                moved = True
        if moved:
            continue
        if ended:
            return
        ended = engine.get(task_id).state.terminal  # read once more after the end, then stop
        if not ended:
            await asyncio.sleep(POLL)


def exit_frame(task: Task) -> bytes:
    """The exit frame's payload for a terminal task."""
    status = status_from_wait(task.exit_code, task.signal)
    return api.encode(api.ExitStatus(status, task.exit_code, task.signal, task.state.value))


async def attach(request: web.Request) -> web.StreamResponse:
    """``GET /v1/tasks/{id}/attach``: stdout/stderr frames as they are written, then exit.

    With ``interactive=1`` (a WebSocket upgrade): see :mod:`dshell_local.ttyattach`."""
    if query_flag(request, "interactive"):
        from .ttyattach import attach_interactive

        return await attach_interactive(request)
    engine = ctx_of(request).engine
    task_id = task_id_of(request)
    task = await _wait_launched(request, task_id)
    offsets = {
        api.FRAME_STDOUT: query_int(request, "stdout_offset", 0),
        api.FRAME_STDERR: query_int(request, "stderr_offset", 0),
    }
    resp = await _open_stream(request, "application/vnd.dshell.frames")
    if task.sandbox:
        async for kind, data in follow_outputs(engine, task_id, Path(task.sandbox), offsets):
            await resp.write(api.pack_frame(kind, data))
    await resp.write(api.pack_frame(api.FRAME_EXIT, exit_frame(engine.get(task_id))))
    await resp.write_eof()
    return resp


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /v1/events?since=N&follow=1``: NDJSON events with ``seq > since``."""
    bus = ctx_of(request).engine.bus
    since = query_int(request, "since", 0)
    follow = query_flag(request, "follow")
    resp = await _open_stream(request, "application/x-ndjson")
    while True:
        batch = bus.read(since)
        if batch:
            await resp.write(b"\n".join(batch) + b"\n")
            since = msgspec.json.decode(batch[-1], type=_Seq).seq
            continue
        if not follow:
            break
        before = bus.committed
        await bus.wait_after(since, KEEPALIVE)
        if bus.committed == before:
            await resp.write(b"\n")
    await resp.write_eof()
    return resp


class _Seq(msgspec.Struct):
    seq: int


async def stats(request: web.Request) -> web.StreamResponse:
    """``GET /v1/stats``: one sample (JSON list); ``follow=1``: one NDJSON line per interval."""
    sampler = ctx_of(request).sampler
    # Every parameter is checked, used or not: a bad one is a 400, never silently ignored.
    interval = max(0.2, query_float(request, "interval", 2.0) or 2.0)
    count = query_int(request, "count", 0)
    if not query_flag(request, "follow"):
        return web.Response(
            body=api.encode(await sampler.sample()), content_type="application/json"
        )
    resp = await _open_stream(request, "application/x-ndjson")
    sent = 0
    while count <= 0 or sent < count:
        await resp.write(api.encode(await sampler.sample()) + b"\n")
        sent += 1
        await asyncio.sleep(interval)
    await resp.write_eof()
    return resp


def add_stream_routes(app: web.Application) -> None:
    p = api.API_PREFIX
    app.router.add_get(f"{p}/tasks/{{id}}/files/read", read_file)
    app.router.add_get(f"{p}/tasks/{{id}}/attach", attach)
    app.router.add_get(f"{p}/events", events)
    app.router.add_get(f"{p}/stats", stats)
