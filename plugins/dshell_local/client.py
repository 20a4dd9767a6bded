"""The CLI's client of the engine API: synchronous, stdlib only, over ``AF_UNIX``.

Plain JSON requests go through :mod:`dshell_local.wire` (a few dozen lines of HTTP/1.1);
``http.client`` is imported only for streams.

It imports neither aiohttp nor asyncio nor psutil (the CLI's start-up time depends on it).
Answers decode straight into :mod:`dshell.model` structs; API errors become the matching
:mod:`dshell.errors` exception (404 NotFoundError, 400/422 UsageError, 409 ConflictError,
408 TimeoutExpired, 501 UnsupportedError, others BackendError), and a socket that does not
answer becomes UnreachableError.
"""

from __future__ import annotations

import gc
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from dshell import errors
from dshell.model import Agent, Event, FileEntry, Framework, RunSpec, Task, TaskStats

from . import api
from .wire import Disconnected, UnixHTTP

if TYPE_CHECKING:
    import http.client

T = TypeVar("T")
_BIG = 256 * 1024
DEFAULT_TIMEOUT = -1.0  # "the client's timeout", as opposed to None: no timeout at all
_RETRYABLE = (Disconnected, BrokenPipeError, ConnectionResetError)
_ERRORS: dict[int, type[errors.DshellError]] = {
    400: errors.UsageError,
    404: errors.NotFoundError,
    408: errors.TimeoutExpired,
    409: errors.ConflictError,
    422: errors.UsageError,
}


def unix_http_connection(path: str, timeout: float | None) -> http.client.HTTPConnection:
    """``http.client`` over a Unix socket (for streams; imported on first use)."""
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(path)
            except OSError:
                sock.close()
                raise
            self.sock = sock

    return UnixHTTPConnection("localhost", timeout=timeout)


def raise_for(status: int, body: bytes) -> None:
    """Raise the dshell error for an API error answer."""
    try:
        detail = msgspec.json.decode(body, type=api.ErrorBody).error
        message, code = detail.message, detail.code
    except msgspec.MsgspecError:
        message, code = body.decode(errors="replace")[:500] or f"HTTP {status}", "unknown"
    if status == 501:
        raise errors.BackendError(message)
    kind = _ERRORS.get(status, errors.BackendError)
    if kind is errors.BackendError:
        message = f"engine error {status} ({code}): {message}"
    raise kind(message)


class EngineClient:
    """One keep-alive connection for requests; streams get their own connection."""

    def __init__(self, socket_path: Path | str, timeout: float | None = 30.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._conn: UnixHTTP | None = None

    def close(self) -> None:
        """Close the keep-alive connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport ------------------------------------------------------------------------

    def _unreachable(self, exc: OSError) -> errors.UnreachableError:
        return errors.UnreachableError(
            f"the engine at {self.socket_path} does not answer ({exc})",
            hint="start it with 'dshell engine start'",
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> tuple[int, bytes]:
        """Send one request and return ``(status, body)``; errors are not raised here.

        ``timeout``: seconds, None for none, or DEFAULT_TIMEOUT for the client's own."""
        url = api.API_PREFIX + path + _query(query)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = UnixHTTP(self.socket_path, self.timeout)
            conn = self._conn
            conn.timeout = self.timeout if timeout == DEFAULT_TIMEOUT else timeout
            try:
                status, data, closing = conn.roundtrip(method, url, body, headers)
            except _RETRYABLE as exc:
                self.close()
                if reused and attempt == 0:
                    continue  # the engine closed an idle keep-alive connection
                raise self._unreachable(exc) from exc
            except TimeoutError as exc:
                self.close()
                raise errors.UnreachableError(f"the engine did not answer in time ({exc})") from exc
            except OSError as exc:
                self.close()
                raise self._unreachable(exc) from exc
            if closing:
                self.close()
            return status, data
        raise AssertionError("unreachable")

    def call(
        self,
        method: str,
        path: str,
        kind: type[T],
        body: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> T:
        """A JSON request decoded as ``kind``; API errors raised as dshell errors."""
        payload = None if body is None else api.encode(body)
        status, data = self.request(method, path, payload, query, timeout)
        if status >= 400:
            raise_for(status, data)
        if len(data) < _BIG:
            return msgspec.json.decode(data, type=kind)
        gc.disable()  # thousands of fresh structs: collections would only slow the decode down
        try:
            return msgspec.json.decode(data, type=kind)
        finally:
            gc.enable()

    def stream(
        self, path: str, query: dict[str, Any] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """A GET on its own connection, for reading a streamed (chunked) answer."""
        conn = unix_http_connection(self.socket_path, None)
        try:
            conn.request("GET", api.API_PREFIX + path + _query(query))
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise self._unreachable(exc) from exc
        if resp.status >= 400:
            data = resp.read()
            conn.close()
            raise_for(resp.status, data)
        return conn, resp

    # ---- engine ---------------------------------------------------------------------------

    def ping(self, timeout: float = 2.0) -> bool:
        """True if the engine answers on its socket."""
        try:
            status, _ = self.request("GET", "/ping", timeout=timeout)
        except errors.UnreachableError:
            return False
        return status == 200

    def status(self) -> api.EngineStatus:
        """``GET /v1/status``."""
        return self.call("GET", "/status", api.EngineStatus)

    def shutdown(self, kill_tasks: bool = False) -> None:
        """Ask the engine to stop (after killing every task if ``kill_tasks``)."""
        self.call("POST", "/shutdown", dict, api.ShutdownRequest(kill_tasks), timeout=None)

    # ---- tasks ----------------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        all: bool = False,
        states: list[str] | None = None,
        labels: dict[str, str] | None = None,
        name: str | None = None,
        prefix: str | None = None,
        limit: int | None = None,
        full: bool = False,
    ) -> list[Task]:
        """Tasks as summaries (no ``history``, no ``env``) unless ``full``."""
        query: dict[str, Any] = {
            "all": "1" if all else None,
            "view": "full" if full else None,
            "state": ",".join(states) if states else None,
            "label": [f"{k}={v}" for k, v in (labels or {}).items()] or None,
            "name": name,
            "prefix": prefix,
            "limit": limit,
        }
        return self.call("GET", "/tasks", list[Task], query=query)

    def submit(self, spec: RunSpec) -> list[Task]:
        """Launch ``spec``. Without an idempotency key one is made up for this call, so the
        transparent retry of a request on a dropped keep-alive connection never runs it twice.
        """
        if spec.idempotency_key is None:
            import uuid

            spec = msgspec.structs.replace(spec, idempotency_key=f"auto-{uuid.uuid4().hex}")
        return self.call("POST", "/tasks", list[Task], spec)

    def get_task(self, task_id: str) -> Task:
        """One task with its history; NotFoundError if unknown."""
        return self.call("GET", f"/tasks/{_q(task_id)}", Task)

    def kill(self, task_id: str, grace: float | None = None) -> Task:
        """SIGTERM, ``grace`` seconds, SIGKILL to the whole task (engine default grace 5 s)."""
        return self.call("POST", f"/tasks/{_q(task_id)}/kill", Task, api.KillRequest(grace))

    def signal(self, task_id: str, sig: int) -> Task:
        """Send one signal to a running task."""
        return self.call("POST", f"/tasks/{_q(task_id)}/signal", Task, api.SignalRequest(sig))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once it is terminal; TimeoutExpired after ``timeout`` seconds."""
        query = {"timeout": timeout} if timeout is not None else None
        http_timeout = None if timeout is None else timeout + 30.0
        return self.call(
            "GET", f"/tasks/{_q(task_id)}/wait", Task, query=query, timeout=http_timeout
        )

    def list_files(self, task_id: str, path: str = "") -> list[FileEntry]:
        """Entries of a directory in the task's sandbox."""
        return self.call(
            "GET", f"/tasks/{_q(task_id)}/files", list[FileEntry], query={"path": path}
        )

    def read_file(
        self,
        task_id: str,
        path: str,
        *,
        offset: int = 0,
        length: int | None = None,
        follow: bool = False,
    ) -> Iterator[bytes]:
        """The bytes of a sandbox file from ``offset``; with ``follow``, until the task ends."""
        query = {
            "path": path,
            "offset": offset,
            "length": length,
            "follow": "1" if follow else None,
        }
        conn, resp = self.stream(f"/tasks/{_q(task_id)}/files/read", query)
        try:
            while data := resp.read1(65536):
                yield data
        finally:
            conn.close()

    def attach(self, task_id: str) -> Iterator[tuple[int, bytes]]:
        """``(frame type, payload)`` of a task's output, ending with the exit frame."""
        conn, resp = self.stream(f"/tasks/{_q(task_id)}/attach")
        try:
            while header := _read_exact(resp, api.HEADER_SIZE):
                kind, length = api.unpack_header(header)
                yield kind, _read_exact(resp, length) if length else b""
        finally:
            conn.close()

    def events(self, since: int = 0, follow: bool = False) -> Iterator[Event]:
        """Events with ``seq > since``; with ``follow``, forever (close the iterator to stop)."""
        query = {"since": since, "follow": "1" if follow else None}
        conn, resp = self.stream("/events", query)
        decoder = msgspec.json.Decoder(Event)
        try:
            for line in resp:
                if line.strip():
                    yield decoder.decode(line)
        finally:
            conn.close()

    def stats(self) -> list[TaskStats]:
        """One usage sample per running task."""
        return self.call("GET", "/stats", list[TaskStats])

    def agents(self) -> list[Agent]:
        """Agents with total, allocated and used resources."""
        return self.call("GET", "/agents", list[Agent])

    def roles(self) -> list[api.RoleShare]:
        """Roles with their weights and DRF shares."""
        return self.call("GET", "/roles", list[api.RoleShare])

    def frameworks(self) -> list[Framework]:
        """The frameworks the engine runs (the built-in meta-framework)."""
        return self.call("GET", "/frameworks", list[Framework])


def _read_exact(resp: http.client.HTTPResponse, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = resp.read(n - len(buf))
        if not data:
            if buf:
                raise errors.BackendError("the engine ended a stream in the middle of a frame")
            return b""
        buf += data
    return buf


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _query(query: dict[str, Any] | None) -> str:
    if not query:
        return ""
    pairs = [(k, str(v)) for k, v in query.items() if v is not None and not isinstance(v, list)]
    pairs += [(k, str(x)) for k, v in query.items() if isinstance(v, list) for x in v]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""
