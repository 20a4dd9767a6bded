"""A small blocking client for tests, benchmarks and tools (the engine uses ``client.py``).

    with SyncExecutorClient.connect("/run/dshell") as ex:
        ex.call("spawn", task_id="t1", argv=["/bin/true"], env={}, cwd=..., stdout=..., stderr=...)
        event = ex.wait_exited("t1", timeout=10)

Events that arrive while waiting for a response are kept and returned by ``wait_exited`` /
``events``; ``hello`` is sent on connect so that events flow.
"""

from __future__ import annotations

import collections
import os
import socket
import time
from types import TracebackType
from typing import Any

import msgspec

from .protocol import encode_request


class ExecutorCallError(Exception):
    """The executor answered ``ok: false``."""

    def __init__(self, code: str, message: str, errno: int | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.errno = errno


class SyncExecutorClient:
    """One blocking connection to an executor."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._next_id = 0
        self._events: collections.deque[dict[str, Any]] = collections.deque()
        self._replies: dict[int, dict[str, Any]] = {}
        self.hello: dict[str, Any] = {}

    @classmethod
    def connect(
        cls, runtime_dir: str, timeout: float = 10.0, hello: bool = True
    ) -> SyncExecutorClient:
        """Connect to ``runtime_dir/executor.sock`` (no auto-start) and say hello."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(os.path.join(runtime_dir, "executor.sock"))
        client = cls(sock)
        if hello:
            client.hello = client.call("hello", engine_pid=os.getpid())
        return client

    def send(self, op: str, **fields: Any) -> int:
        """Send a request without waiting; returns its id (for pipelining)."""
        self._next_id += 1
        self._sock.sendall(encode_request(self._next_id, op, fields))
        return self._next_id

    def result(self, req_id: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the response to ``req_id``; raise ExecutorCallError on ``ok: false``."""
        deadline = time.monotonic() + timeout
        while req_id not in self._replies:
            self._read_one(deadline)
        reply = self._replies.pop(req_id)
        if not reply.get("ok"):
            raise ExecutorCallError(
                reply.get("error", "?"), reply.get("message", ""), reply.get("errno")
            )
        return reply

    def call(self, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its response."""
        return self.result(self.send(op, **fields), timeout)

    def wait_exited(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the ``exited`` event of ``task_id`` (other events are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self._events:
                if ev.get("task_id") == task_id:
                    self._events.remove(ev)
                    return ev
            self._read_one(deadline)

    def events(self) -> list[dict[str, Any]]:
        """Take the events received so far."""
        out = list(self._events)
        self._events.clear()
        return out

    def next_event(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next event (waiting for one if none is pending)."""
        deadline = time.monotonic() + timeout
        while not self._events:
            self._read_one(deadline)
        return self._events.popleft()

    def _read_one(self, deadline: float) -> None:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the executor")
            self._sock.settimeout(left)
            data = self._sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the executor closed the connection")
            self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            msg = msgspec.json.decode(bytes(self._buf[:end]))
            del self._buf[: end + 1]
            if "event" in msg:
                self._events.append(msg)
            else:
                self._replies[msg["id"]] = msg

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SyncExecutorClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
