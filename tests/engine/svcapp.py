"""A test service instance: an HTTP server that reports its life to the test's collector file.

Run as ``python3 svcapp.py COLLECTOR`` by a service; it appends one line per event to the
collector (``O_APPEND`` writes of a few bytes are atomic, so the file's order is the order of
the events across every instance):

    start <task> <version>     first thing at start-up
    ready <task> <version>     when it begins answering (before any check can pass)
    end <task> <version>       on SIGTERM, just before exiting
    post <task> <path>         a POST (the lifecycle endpoints)

``GET /health`` answers 200, or 500 while the file named by ``$FAIL_HEALTH`` exists;
``GET /ready`` the same with ``$FAIL_READY``. ``$SVC_EXIT`` makes it exit with that code right
after ``start`` (a crash loop); ``$SVC_DELAY`` sleeps that long before serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

COLLECTOR = sys.argv[1]
TASK = os.environ.get("DSHELL_TASK_ID", "?")
VERSION = os.environ.get("SVC_VERSION", "-")


def report(event: str, detail: str = VERSION) -> None:
    fd = os.open(COLLECTOR, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {TASK} {detail}\n".encode())
    finally:
        os.close(fd)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    method, path = head.split(b" ", 2)[:2]
    status = 200
    if method == b"POST":
        report("post", path.decode())
    elif path == b"/health" and os.path.exists(os.environ.get("FAIL_HEALTH", "/nonexistent")):
        status = 500
    elif path == b"/ready" and os.path.exists(os.environ.get("FAIL_READY", "/nonexistent")):
        status = 503
    writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok" % status)
    try:
        await writer.drain()
    finally:
        writer.close()


async def main() -> None:
    report("start")
    if os.environ.get("SVC_EXIT"):
        sys.exit(int(os.environ["SVC_EXIT"]))
    await asyncio.sleep(float(os.environ.get("SVC_DELAY", "0")))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ["PORT_HTTP"]))
    report("ready")
    await stop.wait()
    report("end")
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
