"""Health checks, readiness checks and graceful shutdown of service instances (embedded engine).

The services controller watches each running instance with a :class:`HealthMonitor` (and, during
deployments, a :class:`ReadinessMonitor`), and stops instances through
:func:`graceful_shutdown` before SIGTERM. Semantics are Mesos' ``HealthCheck`` as Marathon applies
it, with Aurora's additions where named (all times in seconds):

- **Schedule.** The first check runs ``delay`` after the task started, then one every
  ``interval``; a check never overlaps the previous one of the same spec (one slower than
  ``interval`` delays the next). Each check has ``timeout``: a check still running then has
  failed. Due times are rounded up to a 0.1 s grid (``interval``/10 when shorter), so that the
  checks of many instances share the event loop's wakeups: on these machines a wakeup costs
  more CPU than a check's own work (measured in bench/services.py).
- **Protocols.** HTTP: ``GET path`` on ``host:port`` (HTTP/1.1, ``Connection: close``); healthy
  iff the status is 200-399 (Mesos), or equal to ``expected_status`` when set, and, when
  ``expected_response`` is set, the body (stripped) equals it case-insensitively (Aurora). HTTPS:
  the same over TLS, certificate **not** verified (as Mesos). TCP: healthy iff a connection is
  established. COMMAND: ``/bin/sh -c command`` in the task's sandbox, with the task's environment,
  inside the task's cgroups, in its own process group; exit 0 = healthy; at the timeout the group
  is SIGKILLed and reaped (see :func:`executor_runner`). HTTP and TCP checks run on the event loop
  (no thread or process per check); their socket is closed whatever happens.
- **Port.** ``port`` if set, else the named port ``port_name``, else the port at ``port_index``
  (default 0) of the instance (:class:`CheckTarget`).
  An HTTP check with ``unix_socket`` (dshell's own, for a nested engine's API) connects to that
  socket instead and has no port.
- **Grace period.** Failures within ``grace_period`` of the task's start are not counted, until
  the first success: after it the grace period is over.
- **Counting.** A success resets the consecutive failures and marks the instance healthy. A
  counted failure increments them and marks it unhealthy. After ``max_consecutive_failures``
  counted failures in a row the status says ``kill=True`` and the instance is checked no more:
  the controller kills and replaces it. **0 means never kill** (Marathon): it stays unhealthy.
- **Not performed.** A COMMAND check the executor could not even try (unreachable executor, task
  unknown to it) is not counted either way, as Mesos ignores unavailable check results.
- **Several checks.** An instance is healthy when all its checks are, unhealthy when one is, and
  killed when one reaches its limit. With no checks it is not watched.
- **Restart.** ``watch(..., initial=status)`` continues from a persisted status: a healthy
  instance stays healthy (its grace period is over) until its next check decides.

Readiness (Marathon ``readinessChecks``): HTTP(S) ``GET path`` on the named port, first at once,
then every ``interval`` after the previous one ended, until the status is one of
``http_status_codes_for_ready``; from then on the instance is ready for good.

Graceful shutdown (Aurora HTTP lifecycle): POST the graceful endpoint, wait
``graceful_shutdown_wait``, POST the shutdown endpoint, wait ``shutdown_wait``; stop waiting as
soon as the process has exited. The caller then sends SIGTERM, waits its grace, then SIGKILL.

``on_change`` callbacks are called from the monitors' tasks, only when ``healthy`` or ``kill``
(resp. ``ready``) changes; they must not raise, and may call ``unwatch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar
from urllib.parse import quote

import msgspec
from dshell.model import Task
from dshell.specs.model import HealthCheckSpec, LifecycleSpec, ReadinessCheckSpec

from .execport import ExecutorError, ExecutorPort
from .tasks import process_env, utcnow

log = logging.getLogger(__name__)

PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND")
MAX_RESPONSE = 64 * 1024  # headers + body read for expected_response / preserve_last_response
SIGNAL_TIMEOUT = 1.0  # per lifecycle POST, as Aurora's HttpSignaler
COALESCE = 0.1  # due times are rounded up to this grid (interval/10 for shorter intervals)
COMMAND_SLACK = 5.0  # beyond a COMMAND check's timeout, the executor's answer is not awaited


class HealthStatus(msgspec.Struct, frozen=True, kw_only=True):
    """An instance's health: ``healthy`` is None until a check has been counted."""

    healthy: bool | None = None
    consecutive_failures: int = 0
    kill: bool = False  # killing it is due: max_consecutive_failures reached
    last_check_at: str | None = None  # RFC 3339 UTC
    message: str | None = None  # the last result, e.g. "HTTP 503", "connection refused"


class ReadinessStatus(msgspec.Struct, frozen=True, kw_only=True):
    """An instance's readiness (ready for good once true)."""

    ready: bool = False
    last_check_at: str | None = None
    message: str | None = None
    last_response: str | None = None  # the body, with ``preserve_last_response``


class CheckTarget(msgspec.Struct, frozen=True, kw_only=True):
    """What a check needs of an instance. ``host`` should be numeric (no resolver thread)."""

    task_id: str
    host: str = "127.0.0.1"
    ports: dict[str, int] = {}  # by name
    port_list: list[int] = []  # by index (PORT0, PORT1…)
    sandbox: str = ""  # COMMAND: cwd
    env: dict[str, str] = {}  # COMMAND: the complete environment


def target_of(task: Task, host: str = "127.0.0.1") -> CheckTarget:
    """The check target of a running engine task (ports, sandbox, process environment)."""
    return CheckTarget(
        task_id=task.id,
        host=host,
        ports={p.name: p.port for p in task.ports if p.name},
        port_list=[p.port for p in task.ports],
        sandbox=task.sandbox or "",
        env=process_env(task.env),
    )


class CheckConfigError(ValueError):
    """A check spec that cannot be applied to an instance (names the field)."""


class CheckUnavailable(Exception):
    """A COMMAND check could not be performed at all: it counts neither way."""


class CommandError(Exception):
    """A COMMAND check could not be started in the task (a counted failure)."""


RunCommand = Callable[[CheckTarget, str, float], Awaitable[int | None]]
"""Run a COMMAND check: ``(target, command, timeout)`` → exit status (128+signal when killed by
one), or None when it was killed at its timeout. Raises CheckUnavailable or CommandError."""


def executor_runner(port: ExecutorPort) -> RunCommand:
    """COMMAND checks through the executor's ``run_check``: it spawns ``/bin/sh -c`` into the
    task's cgroups as it spawned the task (so nothing of the check runs outside them), in the
    sandbox with the task's environment, in a new session, and SIGKILLs the group at the
    timeout. Without cgroups (isolation off) the same minus the cgroups."""

    async def run(target: CheckTarget, command: str, timeout: float) -> int | None:
        try:
            out = await port.run_check(target.task_id, command, target.env, target.sandbox, timeout)
        except ExecutorError as exc:
            raise CheckUnavailable(f"check not performed: {exc}") from exc
        if out.error:
            raise CommandError(out.error)
        if out.timed_out:
            return None
        return 128 + out.signal if out.signal else out.exit_code

    return run


async def run_local_command(target: CheckTarget, command: str, timeout: float) -> int | None:
    """COMMAND checks run by the engine itself (no executor: tests, isolation off): sandbox,
    environment and a new session, but no cgroups. The group is SIGKILLed at the timeout and
    when the shell ends, and the shell is always reaped, even when the check is cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, cwd=target.sandbox or None, env=target.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise CommandError(f"cannot start the check: {exc.strerror or exc}") from exc
    code: int | None = None
    try:
        async with asyncio.timeout(timeout):
            code = await proc.wait()
    except TimeoutError:
        code = None
    finally:
        _kill_group(proc.pid)  # the shell's pid names its group until it is reaped (and after)
        if proc.returncode is None:
            await proc.wait()
    return 128 - code if code is not None and code < 0 else code


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ---------------------------------------------------------------- HTTP and TCP probes


class BadResponse(Exception):
    """Not an HTTP response we can judge."""


class _Response:
    """An HTTP/1.x response parsed as its bytes arrive: ``feed`` returns (status, body) once the
    status line (and, with ``want_body``, the whole body, bounded by MAX_RESPONSE) is in."""

    __slots__ = ("_body_at", "_buf", "_chunked", "_length", "_status", "_want_body")

    def __init__(self, want_body: bool) -> None:
        self._want_body = want_body
        self._buf = b""
        self._status: int | None = None
        self._body_at = -1
        self._length: int | None = None
        self._chunked = False

    def feed(self, data: bytes) -> tuple[int, bytes] | None:
        """Add received bytes (``b""``: the peer closed); raise BadResponse."""
        self._buf += data
        result = self._parse(eof=not data)
        if result is None and not data:
            raise BadResponse("connection closed before the response ended")
        if result is None and len(self._buf) > MAX_RESPONSE:
            raise BadResponse(f"response longer than {MAX_RESPONSE} bytes")
        return result

    def _parse(self, eof: bool) -> tuple[int, bytes] | None:
        buf = self._buf
        if self._status is None:
            end = buf.find(b"\r\n")
            if end < 0:
                return None
            self._status = _status_of(buf[:end])
            if not self._want_body:
                return self._status, b""
        if self._body_at < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            self._body_at = end + 4
            self._length, self._chunked = _framing(buf[:end])
        body = buf[self._body_at :]
        if self._length is not None and len(body) >= self._length:
            return self._status, body[: self._length]
        if eof:
            return self._status, _dechunk(body) if self._chunked else body
        return None


def _status_of(line: bytes) -> int:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise BadResponse(f"not an HTTP status line: {line[:60]!r}")
    return int(parts[1])


def _framing(head: bytes) -> tuple[int | None, bool]:
    """(Content-Length, chunked) from the header block."""
    length, chunked = None, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return (None if chunked else length), chunked


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while (eol := data.find(b"\r\n", pos)) >= 0:
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            raise BadResponse("bad chunk size") from None
        if size == 0:
            break
        out += data[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


def _socket_for(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


async def http_request(
    host: str,
    port: int,
    path: str,
    timeout: float,
    *,
    method: str = "GET",
    tls: ssl.SSLContext | None = None,
    want_body: bool = False,
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a new connection, closed before returning whatever happens:
    (status, body), the body only with ``want_body``. Raises OSError (refused, reset, TLS),
    TimeoutError or BadResponse. Plain HTTP uses the loop's socket calls directly (measured
    cheaper than transports and streams: bench/services.py)."""
    return await _exchange(host, port, _request(method, host, port, path), timeout, tls, want_body)


def _request(method: str, host: str, port: int, path: str) -> bytes:
    extra = "Content-Length: 0\r\n" if method == "POST" else ""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: dshell-check\r\n"
        f"Accept: */*\r\nConnection: close\r\n{extra}\r\n"
    ).encode("ascii")


async def _exchange(
    host: str, port: int, request: bytes, timeout: float, tls: ssl.SSLContext | None,
    want_body: bool,
) -> tuple[int, bytes]:  # fmt: skip
    response = _Response(want_body)
    async with asyncio.timeout(timeout):
        if tls is not None:
            return await _tls_exchange(host, port, request, response, tls)
        loop = asyncio.get_running_loop()
        with _socket_for(host) as sock:
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, request)
            while (result := response.feed(await loop.sock_recv(sock, 65536))) is None:
                pass
            return result


async def unix_exchange(
    path: str, request: bytes, timeout: float, want_body: bool
) -> tuple[int, bytes]:
    """``_exchange`` over a Unix socket (``unix_socket`` checks: a nested engine's API)."""
    response = _Response(want_body)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, path)
            await loop.sock_sendall(sock, request)
            while (result := response.feed(await loop.sock_recv(sock, 65536))) is None:
                pass
            return result


async def _tls_exchange(
    host: str, port: int, request: bytes, response: _Response, tls: ssl.SSLContext
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        writer.write(request)
        while (result := response.feed(await reader.read(65536))) is None:
            pass
        return result
    finally:
        writer.transport.abort()  # closed in this loop round: no lingering TLS shutdown


async def tcp_connect(host: str, port: int, timeout: float) -> None:
    """Connect, then close at once; raises OSError or TimeoutError."""
    loop = asyncio.get_running_loop()
    with _socket_for(host) as sock:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))


def insecure_tls() -> ssl.SSLContext:
    """TLS without certificate or host name verification (Mesos does not verify either)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _http_path(path: str | None) -> str:
    path = path or "/"
    return quote(path if path.startswith("/") else "/" + path, safe="/%?#[]@!$&'()*+,;=:~-._")


# ---------------------------------------------------------------- health


Probe = tuple[bool | None, str]  # (healthy, or None: not performed; message)


class _Check:
    """One health check of one instance: its spec, resolved port and counters."""

    __slots__ = ("failures", "grace_over", "healthy", "message", "port", "request", "spec")

    def __init__(
        self, spec: HealthCheckSpec, host: str, port: int | None, initial: HealthStatus
    ) -> None:
        self.spec = spec
        self.port = port
        self.request = _request("GET", host, port or 0, _http_path(spec.path))
        self.failures = initial.consecutive_failures
        self.healthy = initial.healthy
        self.grace_over = initial.healthy is not None  # a counted result ended it before
        self.message = initial.message


class _Watched:
    """An instance under watch: its target, start time, checks, status and check tasks."""

    __slots__ = ("checks", "started", "status", "target", "tasks")

    def __init__(self, target: CheckTarget, started: float, status: HealthStatus) -> None:
        self.target = target
        self.started = started
        self.status = status
        self.checks: list[_Check] = []
        self.tasks: list[asyncio.Task[None]] = []


def _resolve_port(target: CheckTarget, spec: HealthCheckSpec) -> int:
    if spec.port is not None:
        return spec.port
    if spec.port_name is not None:
        if spec.port_name not in target.ports:
            raise CheckConfigError(f"health check port_name {spec.port_name!r}: no such port")
        return target.ports[spec.port_name]
    index = spec.port_index or 0
    if not 0 <= index < len(target.port_list):
        raise CheckConfigError(f"health check port_index {index}: the task has no such port")
    return target.port_list[index]


def _validate(target: CheckTarget, spec: HealthCheckSpec) -> int | None:
    """The port of ``spec`` on ``target`` (None for COMMAND); raise CheckConfigError."""
    if spec.protocol not in PROTOCOLS:
        raise CheckConfigError(f"health check protocol {spec.protocol!r}: use one of {PROTOCOLS}")
    if not spec.interval > 0 or not spec.timeout > 0:
        raise CheckConfigError("health check interval and timeout must be positive")
    if spec.protocol == "COMMAND":
        if not (spec.command or "").strip():
            raise CheckConfigError("health check command: required for protocol COMMAND")
        return None
    if spec.unix_socket is not None:
        return None
    return _resolve_port(target, spec)


W = TypeVar("W", bound="_Watched | _Ready")


class _Monitor(Generic[W]):
    """What both monitors share: the watched instances and the checks being cancelled."""

    def __init__(self) -> None:
        self._watched: dict[str, W] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None

    def unwatch(self, task_id: str) -> None:
        """Stop checking an instance (its in-flight checks are cancelled and cleaned up)."""
        inst = self._watched.pop(task_id, None)
        if inst is not None:
            _cancel_into(inst.tasks, self._stopping)

    async def close(self) -> None:
        """Stop every check and wait until their sockets and processes are gone."""
        for task_id in list(self._watched):
            self.unwatch(task_id)
        await _drain(self._stopping)


class HealthMonitor(_Monitor[_Watched]):
    """Runs the health checks of many instances on the running event loop: one asyncio task
    per (instance, check), each sleeping until its next due time."""

    def __init__(
        self,
        run_command: RunCommand | None,
        on_change: Callable[[str, HealthStatus], None],
    ) -> None:
        super().__init__()
        self._run_command = run_command or run_local_command
        self._on_change = on_change

    def watch(
        self,
        target: CheckTarget,
        checks: list[HealthCheckSpec],
        started_at_monotonic: float | None = None,
        initial: HealthStatus | None = None,
    ) -> None:
        """Start checking ``target`` (replacing an earlier watch of its task). The task started
        at ``started_at_monotonic`` (``time.monotonic()``; default now); ``initial`` is its
        persisted status after an engine restart. Raises CheckConfigError (nothing is watched)
        for a spec that does not fit the target. Call it from the event loop."""
        ports = [_validate(target, spec) for spec in checks]
        self.unwatch(target.task_id)
        if not checks:
            return
        status = initial or HealthStatus()
        started = time.monotonic() if started_at_monotonic is None else started_at_monotonic
        inst = _Watched(target, started, status)
        inst.checks = [
            _Check(spec, target.host, port, status)
            for spec, port in zip(checks, ports, strict=True)
        ]
        self._watched[target.task_id] = inst
        if status.kill:
            return  # doomed already: the controller is replacing it
        for chk in inst.checks:
            task = asyncio.create_task(self._loop(inst, chk), name=f"health:{target.task_id}")
            task.add_done_callback(_log_crash)
            inst.tasks.append(task)

    def status(self, task_id: str) -> HealthStatus | None:
        """The instance's current status (None if it is not watched)."""
        inst = self._watched.get(task_id)
        return inst.status if inst else None

    async def _loop(self, inst: _Watched, chk: _Check) -> None:
        grid = min(COALESCE, chk.spec.interval / 10)
        due = _on_grid(inst.started + chk.spec.delay, grid)
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            begun = time.monotonic()
            healthy, message = await self._probe(inst.target, chk)
            self._record(inst, chk, healthy, message, begun)
            if inst.status.kill:
                return
            # from the previous due time, not from the (late) wakeup: no drift off the grid
            due = _on_grid(max(due + chk.spec.interval, time.monotonic()), grid)

    async def _probe(self, target: CheckTarget, chk: _Check) -> Probe:
        spec = chk.spec
        if spec.protocol == "COMMAND":
            return await self._command(target, spec.command or "", spec.timeout)
        try:
            if spec.unix_socket is not None:
                status, body = await unix_exchange(
                    spec.unix_socket, chk.request, spec.timeout, spec.expected_response is not None
                )
                return _judge(spec, status, body)
            assert chk.port is not None
            if spec.protocol == "TCP":
                await tcp_connect(target.host, chk.port, spec.timeout)
                return True, "connected"
            if spec.protocol == "HTTPS" and self._tls is None:
                self._tls = insecure_tls()
            tls = self._tls if spec.protocol == "HTTPS" else None
            want_body = spec.expected_response is not None
            status, body = await _exchange(
                target.host, chk.port, chk.request, spec.timeout, tls, want_body
            )
        except (OSError, BadResponse) as exc:  # TimeoutError is an OSError
            return False, _why(exc)
        return _judge(spec, status, body)

    async def _command(self, target: CheckTarget, command: str, timeout: float) -> Probe:
        try:
            async with asyncio.timeout(timeout + COMMAND_SLACK):
                code = await self._run_command(target, command, timeout)
        except CheckUnavailable as exc:
            return None, str(exc)
        except CommandError as exc:
            return False, str(exc)
        except TimeoutError:
            return None, "check not performed: no answer from the executor"
        if code is None:
            return False, f"command timed out after {timeout:g} s"
        return code == 0, f"command exited with status {code}"

    def _record(
        self, inst: _Watched, chk: _Check, healthy: bool | None, message: str, at: float
    ) -> None:
        chk.message = message
        if healthy is None:  # not performed: nothing changes but the message
            inst.status = msgspec.structs.replace(inst.status, message=message)
            return
        if healthy:
            chk.failures, chk.healthy, chk.grace_over = 0, True, True
        elif chk.grace_over or at >= inst.started + chk.spec.grace_period:
            chk.failures += 1
            chk.healthy = False
        else:
            chk.message = f"{message} (in the grace period: not counted)"
        before = inst.status
        inst.status = _aggregate(inst.checks, chk)
        if (inst.status.healthy, inst.status.kill) != (before.healthy, before.kill):
            if inst.status.kill:
                _cancel_into(inst.tasks, self._stopping)
            self._on_change(inst.target.task_id, inst.status)


def _on_grid(when: float, grid: float) -> float:
    """``when`` rounded up to a multiple of ``grid`` (checks due together share a wakeup)."""
    return math.ceil(when / grid - 1e-9) * grid  # a due time already on the grid stays


def _judge(spec: HealthCheckSpec, status: int, body: bytes) -> Probe:
    message = f"HTTP {status}"
    if spec.expected_status is not None:
        if status != spec.expected_status:
            return False, f"{message}, expected {spec.expected_status}"
    elif not 200 <= status <= 399:
        return False, message
    if spec.expected_response is not None:
        got = body.decode("utf-8", "replace").strip()
        if got.lower() != spec.expected_response.strip().lower():
            return False, f"{message}, body {got[:40]!r} is not {spec.expected_response!r}"
    return True, message


def _aggregate(checks: list[_Check], latest: _Check) -> HealthStatus:
    """The instance's status from its checks' (``latest`` has just been counted)."""
    values = [c.healthy for c in checks]
    healthy = False if False in values else (None if None in values else True)
    worst = max(checks, key=lambda c: c.failures)
    return HealthStatus(
        healthy=healthy,
        consecutive_failures=worst.failures,
        kill=any(0 < c.spec.max_consecutive_failures <= c.failures for c in checks),
        last_check_at=utcnow(),
        message=worst.message if worst.failures else latest.message,
    )


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("check task %s failed", task.get_name(), exc_info=exc)


async def _drain(tasks: set[asyncio.Task[None]]) -> None:
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)


# ---------------------------------------------------------------- readiness


class _Ready:
    """An instance under readiness watch."""

    __slots__ = ("done", "status", "target", "tasks")

    def __init__(self, target: CheckTarget, count: int) -> None:
        self.target = target
        self.status = ReadinessStatus()
        self.done = [False] * count
        self.tasks: list[asyncio.Task[None]] = []


class ReadinessMonitor(_Monitor[_Ready]):
    """Runs Marathon readiness checks until each watched instance is ready (then stops)."""

    def __init__(self, on_change: Callable[[str, bool], None]) -> None:
        super().__init__()
        self._on_change = on_change

    def watch(
        self,
        target: CheckTarget,
        checks: list[ReadinessCheckSpec],
        initial: ReadinessStatus | None = None,
    ) -> None:
        """Start checking ``target`` (first check at once); ``initial``: a persisted status (a
        ready instance stays ready, unchecked). Raises CheckConfigError for a spec that does not
        fit the target. With no checks the instance is not watched."""
        ports = []
        for spec in checks:
            if spec.protocol not in ("HTTP", "HTTPS"):
                raise CheckConfigError(f"readiness check protocol {spec.protocol!r}: HTTP|HTTPS")
            if not spec.interval > 0 or not spec.timeout > 0:
                raise CheckConfigError("readiness check interval and timeout must be positive")
            if spec.port_name not in target.ports:
                raise CheckConfigError(
                    f"readiness check port_name {spec.port_name!r}: no such port"
                )
            ports.append(target.ports[spec.port_name])
        self.unwatch(target.task_id)
        if not checks:
            return
        inst = self._watched[target.task_id] = _Ready(target, len(checks))
        if initial is not None:
            inst.status = initial
            if initial.ready:
                return
        for i, (spec, port) in enumerate(zip(checks, ports, strict=True)):
            task = asyncio.create_task(
                self._loop(inst, i, spec, port), name=f"ready:{target.task_id}"
            )
            task.add_done_callback(_log_crash)
            inst.tasks.append(task)

    def status(self, task_id: str) -> ReadinessStatus | None:
        """The instance's readiness (None if it is not watched)."""
        inst = self._watched.get(task_id)
        return inst.status if inst else None

    async def _loop(self, inst: _Ready, index: int, spec: ReadinessCheckSpec, port: int) -> None:
        if spec.protocol == "HTTPS" and self._tls is None:
            self._tls = insecure_tls()
        tls = self._tls if spec.protocol == "HTTPS" else None
        while True:
            begun = time.monotonic()
            body = b""
            try:
                status, body = await http_request(
                    inst.target.host, port, _http_path(spec.path), spec.timeout, tls=tls,
                    want_body=spec.preserve_last_response,
                )  # fmt: skip
                ready, message = status in spec.http_status_codes_for_ready, f"HTTP {status}"
            except (OSError, BadResponse) as exc:
                ready, message = False, _why(exc)
            inst.done[index] = inst.done[index] or ready
            inst.status = ReadinessStatus(
                ready=all(inst.done),
                last_check_at=utcnow(),
                message=f"{spec.name}: {message}",
                last_response=body.decode("utf-8", "replace") if body else None,
            )
            if ready:
                if inst.status.ready:
                    self._on_change(inst.target.task_id, True)
                return
            await asyncio.sleep(max(0.0, begun + spec.interval - time.monotonic()))


# ---------------------------------------------------------------- graceful shutdown


async def graceful_shutdown(
    host: str, port: int, spec: LifecycleSpec, exited: asyncio.Event
) -> None:
    """Aurora's HTTP lifecycle before a kill: POST ``graceful_shutdown_endpoint``, wait
    ``graceful_shutdown_wait``, POST ``shutdown_endpoint``, wait ``shutdown_wait``; return as
    soon as ``exited`` is set. A POST that fails (refused, timed out after SIGNAL_TIMEOUT, any
    answer at all counts as sent) just moves on to the next step. The caller then sends SIGTERM,
    waits its grace period and SIGKILLs."""
    steps = (
        (spec.graceful_shutdown_endpoint, spec.graceful_shutdown_wait),
        (spec.shutdown_endpoint, spec.shutdown_wait),
    )
    for endpoint, wait in steps:
        if exited.is_set():
            return
        deadline = time.monotonic() + wait
        try:
            status, _ = await http_request(
                host, port, _http_path(endpoint), SIGNAL_TIMEOUT, method="POST"
            )
            log.debug("POST %s on port %d: HTTP %d", endpoint, port, status)
        except (OSError, BadResponse) as exc:
            log.info("POST %s on port %d failed (%s): going on", endpoint, port, _why(exc))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await exited.wait()


def _cancel_into(tasks: list[asyncio.Task[None]], stopping: set[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` (but the calling one), keeping them in ``stopping`` until they end."""
    current = asyncio.current_task()
    for task in tasks:
        if task is not current and not task.done():
            task.cancel()
            stopping.add(task)
            task.add_done_callback(stopping.discard)
