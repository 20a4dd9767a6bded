"""``svc logs``: the output of every instance of a service, merged line by line.

Each line is prefixed with its instance (``web#2 | ...``). Without ``--follow`` the instances'
output is printed one instance after the other; with it, one reader thread per instance feeds
a queue and the main thread prints whole lines as they come, looking for new instances every
second (a replacement or a scale-up joins the stream; an instance that ends leaves it).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING

from ..errors import DshellError, NotFoundError

if TYPE_CHECKING:
    from ..backend import Backend
    from ..model import Service
    from ..session import Session

POLL = 1.0  # seconds between looks for new instances while following


def _prefix(svc: Service, task_id: str) -> bytes:
    for member in svc.members:
        if member.task_id == task_id:
            return f"{svc.name}#{member.instance} | ".encode()
    return f"{svc.name}:{task_id} | ".encode()


def _prefixed(prefix: bytes, data: bytes, partial: bytes) -> tuple[bytes, bytes]:
    """Whole lines of ``partial + data``, each prefixed; and the unfinished rest."""
    text = partial + data
    lines = text.split(b"\n")
    rest = lines.pop()
    return b"".join(prefix + line + b"\n" for line in lines), rest


def logs(session: Session, name: str, *, follow: bool, stream: str = "stdout") -> None:
    from . import services

    _mount, backend, svc_name = services.locate(session, name)
    svc = backend.get_service(svc_name)
    out = session.env.stdout.buffer if hasattr(session.env.stdout, "buffer") else None

    def write(data: bytes) -> None:
        if out is not None:
            out.write(data)
            out.flush()
        else:
            session.env.stdout.write(data.decode(errors="replace"))
            session.env.stdout.flush()

    if not follow:
        for member in svc.members:
            prefix, partial = _prefix(svc, member.task_id), b""
            for chunk in backend.read_output(member.task_id, stream=stream):
                lines, partial = _prefixed(prefix, chunk.data, partial)
                write(lines)
            if partial:
                write(prefix + partial + b"\n")
        return
    _follow(backend, svc_name, svc, stream, write)


def _follow(backend: Backend, name: str, svc: Service, stream: str, write: object) -> None:
    chunks: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
    readers: dict[str, threading.Thread] = {}
    prefixes: dict[str, bytes] = {}
    partial: dict[str, bytes] = {}
    assert callable(write)

    def read(task_id: str) -> None:
        try:
            for chunk in backend.read_output(task_id, stream=stream, follow=True):
                chunks.put((task_id, chunk.data))
        except DshellError:
            pass  # the instance went away: its stream simply ends
        finally:
            chunks.put((task_id, None))

    def join_new(current: Service) -> None:
        for member in current.members:
            if member.task_id not in readers:
                prefixes[member.task_id] = _prefix(current, member.task_id)
                thread = threading.Thread(target=read, args=(member.task_id,), daemon=True)
                readers[member.task_id] = thread
                thread.start()

    join_new(svc)
    next_look = time.monotonic() + POLL
    while True:
        try:
            task_id, data = chunks.get(timeout=max(0.05, next_look - time.monotonic()))
        except queue.Empty:
            task_id, data = "", b""
        if data is None:
            rest = partial.pop(task_id, b"")
            if rest:
                write(prefixes[task_id] + rest + b"\n")
        elif data:
            lines, partial[task_id] = _prefixed(prefixes[task_id], data, partial.get(task_id, b""))
            if lines:
                write(lines)
        if time.monotonic() >= next_look:
            next_look = time.monotonic() + POLL
            try:
                join_new(backend.get_service(name))
            except NotFoundError:
                return  # the service was removed
