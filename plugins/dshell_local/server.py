"""The engine's HTTP/JSON API on a Unix socket (and, when configured, TCP with TLS + token).

Every request on the Unix socket is checked with ``SO_PEERCRED``: only the engine's own uid
may talk to it (the socket's 0600 mode is the first fence, this is the second). A TCP
listener exists only when ``[api.tcp]`` is configured, and then needs TLS and a bearer token.
Errors are JSON (:class:`dshell_local.api.ErrorBody`) with the status codes listed in
docs/engine-api.md; a malformed request gets a 4xx and never stops the engine.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import socket
import sqlite3
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from dshell import errors

from . import api
from .state import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
SHUTDOWN_GRACE = 1.0  # seconds in-flight requests (long polls, streams) get at shutdown
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CRED = struct.Struct("3i")

STATUS_OF: list[tuple[type[Exception], int, str]] = [
    (errors.NotFoundError, 404, "not_found"),
    (errors.AmbiguousError, 409, "ambiguous"),
    (errors.ConflictError, 409, "conflict"),
    (errors.TimeoutExpired, 408, "timeout"),
    (errors.UnsupportedError, 501, "unsupported"),
    (errors.UsageError, 422, "usage"),
    (StoreError, 507, "storage"),
    (sqlite3.Error, 507, "storage"),
    (msgspec.ValidationError, 400, "bad_request"),
    (msgspec.DecodeError, 400, "bad_request"),
]


def error_response(status: int, code: str, message: str) -> web.Response:
    body = api.encode(api.ErrorBody(api.ErrorDetail(code, message)))
    return web.Response(status=status, body=body, content_type="application/json")


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=api.encode(obj), content_type="application/json")


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def peer_uid(request: web.Request) -> int | None:
    """The uid of a Unix-socket peer, or None for another transport."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    _pid, uid, _gid = _CRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    )
    return int(uid)


def make_app(token: str | None) -> web.Application:
    """The aiohttp application with the auth and error middlewares (routes added later)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        uid = peer_uid(request)
        if uid is None:
            supplied = request.headers.get("Authorization", "")
            if not token or not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
                return error_response(401, "unauthorized", "a valid bearer token is required")
        elif uid != os.getuid():
            log.warning("refused a client with uid %d", uid)
            return error_response(403, "forbidden", f"uid {uid} may not use this engine")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, "http", exc.reason)
        except (errors.DshellError, StoreError, sqlite3.Error, msgspec.MsgspecError) as exc:
            for kind, status, code in STATUS_OF:
                if isinstance(exc, kind):
                    return error_response(status, code, str(exc))
            return error_response(500, "internal", str(exc))

    return web.Application(middlewares=[guard], client_max_size=8 * 1024 * 1024)


async def decode_body(request: web.Request, kind: type[T]) -> T:
    """The request body decoded as ``kind`` (an empty body means the defaults)."""
    body = await request.read()
    if not body.strip():
        body = b"{}"
    return msgspec.json.decode(body, type=kind)


def query_flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def query_float(request: web.Request, name: str, default: float | None) -> float | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise errors.UsageError(f"query parameter {name} must be a number") from None
    if not math.isfinite(number):
        raise errors.UsageError(f"query parameter {name} must be a finite number")
    return number


def query_int(request: web.Request, name: str, default: int) -> int:
    value = query_float(request, name, float(default))
    return int(value if value is not None else default)


class Listeners:
    """The running sites: the Unix socket, and the optional TCP one."""

    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE
        )
        self.unix: web.UnixSite | None = None

    async def start(
        self, socket_path: Path, tcp: tuple[str, int] | None, tls: ssl.SSLContext | None
    ) -> None:
        await self.runner.setup()
        await self.bind_unix(socket_path)
        if tcp is not None:
            await web.TCPSite(
                self.runner,
                tcp[0],
                tcp[1],
                ssl_context=tls,
                backlog=1024,
            ).start()

    async def bind_unix(self, socket_path: Path) -> None:
        """Listen on ``socket_path`` (again: a previous Unix site is closed once the new one
        listens; its open connections carry on)."""
        if socket_path.exists() or socket_path.is_symlink():
            socket_path.unlink()
        site = web.UnixSite(self.runner, str(socket_path), backlog=1024)
        old = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            await site.start()
        finally:
            os.umask(old)
        os.chmod(socket_path, 0o600)
        previous, self.unix = self.unix, site
        if previous is not None:
            await previous.stop()

    async def stop(self) -> None:
        await self.runner.cleanup()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
