"""Wire types of the engine API (``/v1``), shared by the engine and the CLI's client.

Only the standard library and msgspec are imported here: the CLI imports this module.
Objects the API returns are the :mod:`dshell.model` structs, encoded with their own field
names, so the client decodes straight into ``Task``, ``Agent``, ``Event``… The request and
status types below are the rest of the protocol; ``docs/engine-api.md`` describes it.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

API_PREFIX = "/v1"
SOCKET_NAME = "engine.sock"
LOCK_NAME = "engine.lock"
DAEMON_LOCK_NAME = "engine.pid"
STATE_LOCK_NAME = "engine.lock"  # in the state dir: one engine per state dir

# Frames of attach and exec streams: one type byte, then the payload.
# Attach (a chunked HTTP body) prefixes each frame with its payload length (4 bytes, big
# endian); exec sends one frame per WebSocket binary message.
FRAME_STDOUT = 1
FRAME_STDERR = 2
FRAME_STDIN = 3
FRAME_RESIZE = 4  # payload: rows, cols as two unsigned 16-bit big-endian integers
FRAME_EXIT = 5  # payload: JSON ExitStatus
FRAME_ERROR = 6  # payload: JSON ErrorBody
FRAME_STDIN_EOF = 7  # payload: empty

_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size


def pack_frame(kind: int, payload: bytes) -> bytes:
    """A length-prefixed frame (attach streams)."""
    return _HEADER.pack(kind, len(payload)) + payload


def unpack_header(header: bytes) -> tuple[int, int]:
    """``(kind, length)`` of a length-prefixed frame header."""
    kind, length = _HEADER.unpack(header)
    return int(kind), int(length)


def pack_resize(rows: int, cols: int) -> bytes:
    return struct.pack(">HH", rows, cols)


def unpack_resize(payload: bytes) -> tuple[int, int]:
    rows, cols = struct.unpack(">HH", payload[:4])
    return int(rows), int(cols)


class ErrorDetail(msgspec.Struct):
    code: str  # not_found | usage | conflict | timeout | forbidden | internal | unsupported
    message: str


class ErrorBody(msgspec.Struct):
    """Every 4xx/5xx answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class KillRequest(msgspec.Struct, omit_defaults=True):
    grace: float | None = None  # seconds between SIGTERM and SIGKILL (engine default: 5)


class SignalRequest(msgspec.Struct):
    signal: int


class ShutdownRequest(msgspec.Struct, omit_defaults=True):
    kill_tasks: bool = False


class ExecRequest(msgspec.Struct, omit_defaults=True):
    """First WebSocket message of an exec: the command to run (JSON, a text message)."""

    command: list[str]
    tty: bool = False
    env: dict[str, str] = {}
    rows: int = 24
    cols: int = 80


class ExitStatus(msgspec.Struct, omit_defaults=True):
    """Payload of an exit frame; ``status`` is the shell convention (128+signal)."""

    status: int
    exit_code: int | None = None
    signal: int | None = None
    state: str | None = None


class Isolation(msgspec.Struct, omit_defaults=True):
    kind: str = "unknown"  # cgroups-v1 | rlimits | none | unknown
    controllers: list[str] = []
    detail: str | None = None


class ExecutorInfo(msgspec.Struct, omit_defaults=True):
    pid: int | None = None
    version: str | None = None
    boot_id: str | None = None
    protocol: int | None = None  # older than the engine's: some operations are missing


class EngineStatus(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``GET /v1/status``."""

    pid: int
    version: str
    api: str = "v1"
    started_at: str
    socket: str
    state_dir: str
    config_file: str | None = None
    executor: ExecutorInfo = msgspec.field(default_factory=ExecutorInfo)
    isolation: Isolation = msgspec.field(default_factory=Isolation)
    active_tasks: int = 0
    agents: int = 0
    last_event: int = 0
    tcp: str | None = None
    recovery: dict[str, int] = {}
    # how tasks see their persistent volumes: "bind mounts in a private mount namespace" or
    # "symlinks (no mount namespace: <why>)"
    volumes: str | None = None


class RoleShare(msgspec.Struct, omit_defaults=True):
    """``GET /v1/roles``: a role's weight and DRF dominant share."""

    name: str
    weight: float
    allocated: dict[str, float] = {}
    share: float = 0.0
    pending: int = 0


def encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)
