"""The executor's socket server: connections, request dispatch, spawn batching, idle exit.

Spawn requests are not executed as they are parsed: every ``spawn``/``spawn_batch`` read in one
loop round is queued and run as one batch at the end of the round, up to ``ROUND_SPAWNS`` tasks
(the rest in the next rounds, between which exits are reaped and sent), or all of them before
any other request, to keep each connection's order. A pipelining engine thus gets one journal
write and one trip home from the task cgroups per round of spawns instead of per task.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import msgspec

from . import checkrun, ops
from .loop import Loop
from .protocol import (
    BAD_REQUEST,
    INTERNAL,
    MAX_LINE,
    AckReq,
    ExitedEvent,
    HelloResult,
    JoinReq,
    ProtocolError,
    ResizeReq,
    RunCheckReq,
    SignalReq,
    SpawnBatchReq,
    SpawnBatchResult,
    SpawnItem,
    SpawnResult,
    SpawnSpec,
    TaskReq,
    WriteStdinReq,
    decode_request,
    encode_error,
    encode_event,
    encode_ok,
    request_id_of,
)
from .tasks import TaskManager

log = logging.getLogger("dshell.executor")

_RECV = 256 * 1024
_MAX_BACKLOG = 64 * 1024 * 1024  # unsent bytes to one client before it is dropped
ROUND_SPAWNS = 128  # tasks spawned per loop round at most (see Server.end_of_round)
EARLY_FLUSH = 32  # a round of this many tasks or more (~30 ms) does not hold back the exits


class Conn:
    """One client connection."""

    __slots__ = ("closed", "rbuf", "sock", "subscribed", "wbuf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.subscribed = False
        self.closed = False


class Server:
    """Accepts clients and answers their requests through the task manager."""

    def __init__(
        self,
        loop: Loop,
        listener: socket.socket,
        mgr: TaskManager,
        hello: Callable[[], HelloResult],
        idle_exit: float,
    ) -> None:
        self.loop = loop
        self._listener = listener
        self.mgr = mgr
        self._hello = hello
        self._idle_exit = idle_exit
        self._idle_since: float | None = None
        self.conns: dict[int, Conn] = {}
        self._spawns: list[tuple[Conn, int, list[SpawnSpec], bool]] = []
        self._dirty: set[Conn] = set()
        self.sweeps = 0
        loop.add_reader(listener.fileno(), self._accept)

    def rebind(self, listener: socket.socket) -> None:
        """Accept on ``listener`` from now on (the old one is closed; connections carry on)."""
        self.loop.set_events(self._listener.fileno(), None, None)
        self._listener.close()
        self._listener = listener
        self.loop.add_reader(listener.fileno(), self._accept)

    # ------------------------------------------------------------ connections

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.loop.add_reader(sock.fileno(), lambda: self._on_readable(conn))

    def _on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:  # ECONNRESET: the client went away
            data = b""
        if not data:
            self._close(conn)
            return
        conn.rbuf += data
        start = 0
        while not conn.closed:
            end = conn.rbuf.find(b"\n", start)
            if end < 0:
                break
            self._handle(conn, bytes(conn.rbuf[start:end]))
            start = end + 1
        del conn.rbuf[:start]
        if len(conn.rbuf) > MAX_LINE:
            self._send(conn, encode_error(0, ProtocolError(BAD_REQUEST, "request line too long")))
            self._close(conn)

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        fd = conn.sock.fileno()
        self.loop.set_events(fd, None, None)
        del self.conns[fd]
        self._dirty.discard(conn)
        conn.sock.close()

    def _send(self, conn: Conn, data: bytes) -> None:
        if conn.closed:
            return
        conn.wbuf += data
        self._dirty.add(conn)

    def _flush(self, conn: Conn) -> None:
        try:
            n = conn.sock.send(conn.wbuf)
        except BlockingIOError:
            n = 0
        except OSError:
            self._close(conn)
            return
        del conn.wbuf[:n]
        if len(conn.wbuf) > _MAX_BACKLOG:
            log.warning("dropping a client that does not read (%d bytes queued)", len(conn.wbuf))
            self._close(conn)
            return
        writer = (lambda: self._flush(conn)) if conn.wbuf else None
        self.loop.set_events(conn.sock.fileno(), lambda: self._on_readable(conn), writer)

    def emit(self, event: ExitedEvent) -> None:
        """Send an event to every connection that said hello."""
        line = encode_event(event)
        for conn in self.conns.values():
            if conn.subscribed:
                self._send(conn, line)

    # ------------------------------------------------------------ requests

    def _handle(self, conn: Conn, line: bytes) -> None:
        if not line.strip():
            return
        try:
            req_id, op, body = decode_request(line)
        except ProtocolError as exc:
            self._send(conn, encode_error(request_id_of(exc), exc))
            return
        if isinstance(body, SpawnSpec):
            self._spawns.append((conn, req_id, [body], False))
            return
        if isinstance(body, SpawnBatchReq):
            self._spawns.append((conn, req_id, body.tasks, True))
            return
        self.run_spawns()  # requests after a spawn see its task
        try:
            result = self._dispatch(conn, req_id, op, body)
        except ProtocolError as exc:
            self._send(conn, encode_error(req_id, exc))
            return
        except OSError as exc:
            log.exception("op %s failed", op)
            err = ProtocolError(INTERNAL, f"{op}: {exc.strerror or exc}", exc.errno)
            self._send(conn, encode_error(req_id, err))
            return
        if result is not None:
            self._send(conn, encode_ok(req_id, result))

    def _dispatch(
        self, conn: Conn, req_id: int, op: str, body: msgspec.Struct
    ) -> msgspec.Struct | None:
        mgr = self.mgr
        if op == "hello":
            conn.subscribed = True
            return self._hello()
        if op == "list":
            return ops.op_list(mgr)
        if op == "stats":
            return ops.op_stats(mgr)
        if isinstance(body, SignalReq):
            return ops.op_signal(mgr, body)
        if isinstance(body, AckReq):
            return ops.op_ack(mgr, body)
        if isinstance(body, JoinReq):
            return ops.op_join(mgr, body)
        if isinstance(body, WriteStdinReq):
            return ops.op_write_stdin(mgr, body)
        if isinstance(body, ResizeReq):
            return ops.op_resize(mgr, body)
        if isinstance(body, TaskReq) and op == "cgroup_paths":
            return ops.op_cgroup_paths(mgr, body)
        if isinstance(body, RunCheckReq):
            checkrun.start_check(
                self.loop, mgr, body, lambda r: self._send(conn, encode_ok(req_id, r))
            )
            return None
        if isinstance(body, TaskReq) and op == "sweep":
            self.sweeps += 1

            def reply(result: msgspec.Struct) -> None:
                self.sweeps -= 1
                self._send(conn, encode_ok(req_id, result))

            ops.op_sweep(self.loop, mgr, body, reply)
            return None
        raise ProtocolError(INTERNAL, f"op {op} has no handler")

    def run_spawns(self, limit: int | None = None) -> None:
        """Execute the queued spawn requests as one batch and queue their replies; with
        ``limit``, only the first requests holding up to ``limit`` tasks (one at least): the
        others wait for the next round."""
        if not self._spawns:
            return
        take, tasks = len(self._spawns), 0
        if limit is not None:
            for i, (_, _, batch, _) in enumerate(self._spawns):
                if i and tasks + len(batch) > limit:
                    take = i
                    break
                tasks += len(batch)
        queued, self._spawns = self._spawns[:take], self._spawns[take:]
        specs = [s for _, _, batch, _ in queued for s in batch]
        items = iter(self.mgr.spawn_many(specs))
        for conn, req_id, batch, is_batch in queued:
            mine = [next(items) for _ in batch]
            if is_batch:
                self._send(conn, encode_ok(req_id, SpawnBatchResult(results=mine)))
            else:
                self._send(conn, _single_reply(req_id, mine[0]))

    # ------------------------------------------------------------ loop

    def end_of_round(self) -> None:
        """Run the batched spawns, up to ``ROUND_SPAWNS`` tasks, and send everything queued
        (called after each loop round); before a long round (``EARLY_FLUSH`` tasks or more),
        send the exits reaped this round first.

        The main thread waits while the placing threads spawn, so exits reaped before a round
        of spawns and sent only after it (as until 2026-11-26) reached the engine a whole
        round late, and a burst's requests, all read in one round, made one long round: the
        engine had nothing to do meanwhile, and the burst's last exits waited for its last
        spawns. Before a short round the exits wait for it: a few milliseconds, and they go
        out together with the next ones (fewer, larger messages, commits and acks)."""
        if sum(len(batch) for _, _, batch, _ in self._spawns) >= EARLY_FLUSH:
            self.mgr.flush_exits()
            self._flush_all()
        self.run_spawns(ROUND_SPAWNS)
        self.mgr.flush_exits()
        self._flush_all()

    def spawns_waiting(self) -> bool:
        """Whether spawn requests wait for the next round (the loop must not sleep)."""
        return bool(self._spawns)

    def _flush_all(self) -> None:
        for conn in list(self._dirty):
            self._flush(conn)
        self._dirty.clear()

    def idle_deadline(self) -> float | None:
        """Seconds until idle exit is due, or None while busy (or idle exit is off)."""
        busy = self.conns or self.sweeps or self.mgr.helpers or self.mgr.running_count()
        if self._idle_exit <= 0 or busy:
            self._idle_since = None
            return None
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        return self._idle_exit - (now - self._idle_since)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.loop.set_events(self._listener.fileno(), None, None)
        self._listener.close()
        for conn in list(self.conns.values()):
            if conn.wbuf:
                try:
                    conn.sock.setblocking(True)
                    conn.sock.settimeout(1.0)
                    conn.sock.sendall(conn.wbuf)
                except OSError:
                    pass
            self._close(conn)


def _single_reply(req_id: int, item: SpawnItem) -> bytes:
    if item.ok and item.pid is not None:
        result = SpawnResult(item.task_id, item.pid, item.start_time or 0, item.existing)
        return encode_ok(req_id, result)
    err = ProtocolError(item.error or INTERNAL, item.message or "spawn failed", item.errno)
    return encode_error(req_id, err)
