"""Wire protocol between the embedded engine and the per-host executor.

Transport: an ``AF_UNIX`` stream socket ``RUNTIME_DIR/executor.sock`` (mode 0600), carrying
newline-delimited JSON (one object per line, UTF-8, no embedded newlines). Requests may be
pipelined: the executor answers each connection's requests in order, and spawn requests that
arrive together are executed as one batch (one cgroup round trip for the lot).

Request::

    {"id": N, "op": "<op>", ...fields}

Response (exactly one per request, same ``id``)::

    {"id": N, "ok": true, ...result fields}
    {"id": N, "ok": false, "error": "CODE", "message": "text", "errno": E?}

Event (unsolicited; sent to every connection that has said ``hello``)::

    {"event": "exited", "task_id", "pid", "exit_code", "signal", "oom", "lost", "finished_at"}

``exit_code`` is null when the task was killed by a signal (then ``signal`` is set) or when its
status is unknowable (``lost``: it was re-adopted after an executor crash, so it was not the
executor's child). ``finished_at`` is RFC 3339 UTC with microseconds and ``Z``. The event is
sent after the exit has been appended to the executor's journal. Events are not queued
for absent engines: after (re)connecting, an engine calls ``list`` to learn exits it missed; an
exited task stays listed until it is ``ack``-ed.

Ops (request fields → result fields):

``hello`` {engine_pid?} → {executor_pid, version, boot_id, isolation: {kind, controllers,
    detail}}. ``kind`` is ``cgroup-v1``, ``cgroup-v2`` or ``rlimit``. Subscribes the connection to
    events.
``spawn`` {task_id, argv, shell?, env, cwd, stdout, stderr, limits?: {mem_mb?, cpus?, pids?},
    tty?} → {task_id, pid, start_time, existing}. Idempotent by ``task_id``: spawning a known
    task returns its pid with ``existing: true`` and starts nothing. ``env`` is the complete
    environment (nothing is inherited; pass ``DSHELL_TASK_ID`` so the no-cgroup ``sweep`` can
    find the task's processes). ``argv[0]`` without a slash is looked up in ``env["PATH"]``.
    ``shell: true`` runs ``["/bin/sh", "-c", argv[0], *argv[1:]]`` (extra items become ``$0``,
    ``$1``…). ``cwd`` (the sandbox), ``stdout`` and ``stderr`` must be absolute paths; an optional
    ``sandbox`` names the task's sandbox when ``cwd`` is a workdir inside it (journaled with
    the task).
``spawn_batch`` {tasks: [spawn fields…]} → {results: [{task_id, ok, pid, start_time, existing,
    error, message, errno}]} in request order (null where not applicable).
``signal`` {task_id, signal (number or name)} → {delivered}. Sent to the task's process group;
    ``delivered: false`` when the task has already exited.
``sweep`` {task_id} → {killed, remaining}: SIGKILL every process of the task (its cgroups'
    ``cgroup.procs``, or without cgroups every process whose environment holds
    ``DSHELL_TASK_ID=<task_id>``, plus its process group), repeated until none is left (bounded).
``list`` → {tasks: [{task_id, pid, start_time, running, exit_code, signal, oom, lost,
    finished_at}]}, exited tasks included until acknowledged.
``ack`` {task_ids} → {forgotten, running}: forget exited tasks and remove their cgroups (any
    process left in them is SIGKILLed before the reply, as a container destroy does; the
    directories are removed in the background once empty). Running tasks are not forgotten;
    they are returned in ``running``.
``stats`` → {tasks: [{task_id, cpu_ns, rss_bytes, nprocs}]} for running tasks.
``cgroup_paths`` {task_id} → {paths}: the task's cgroup directories (empty without cgroups).
``join`` {task_id, pid} → {controllers}: move an existing process (an ``exec`` started by the
    engine) into the task's cgroups.
``run_check`` {task_id, command, env, cwd, timeout} → {exit_code, signal, timed_out}: run
    ``/bin/sh -c command`` (a COMMAND health check) inside the running task's cgroups, in its own
    session, with exactly ``env`` and ``cwd``, stdio on /dev/null; its process group is SIGKILLed
    at ``timeout`` seconds (``timed_out: true``) and whatever is left in the group when the shell
    ends is SIGKILLed too. Answered once the shell is reaped. ``NOT_FOUND`` when the task is not
    running; ``SPAWN_FAILED``/``CGROUP_FAILED`` when the check could not be started in it.
``write_stdin`` {task_id, data} → {written}: bytes (UTF-8 of ``data``) queued to a ``tty`` task.
``resize`` {task_id, rows, cols} → {}: set a ``tty`` task's window size.

Error codes: ``BAD_REQUEST`` (malformed line or field), ``UNKNOWN_OP``, ``NOT_FOUND`` (unknown
task), ``SPAWN_FAILED`` (with ``errno``), ``CGROUP_FAILED`` (with ``errno``), ``NOT_TTY``,
``INTERNAL``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

PROTOCOL_VERSION: Final = 2  # 2: run_check (COMMAND health checks in a task's cgroups)
MAX_LINE: Final = 16 * 1024 * 1024  # a spawn_batch of 1,000 tasks with big envs fits

BAD_REQUEST: Final = "BAD_REQUEST"
UNKNOWN_OP: Final = "UNKNOWN_OP"
NOT_FOUND: Final = "NOT_FOUND"
SPAWN_FAILED: Final = "SPAWN_FAILED"
CGROUP_FAILED: Final = "CGROUP_FAILED"
NOT_TTY: Final = "NOT_TTY"
INTERNAL: Final = "INTERNAL"


# ---------------------------------------------------------------- requests


class Envelope(msgspec.Struct):
    """The part of every request the executor reads first, to pick the op's type."""

    id: int
    op: str


class Limits(msgspec.Struct, omit_defaults=True):
    """Resource limits of one task; ``None`` means unlimited. Memory in MiB (fractions allowed,
    as in Mesos); ``pids`` may come as an integral float from engines that keep resources as
    floats, and is normalized to an int by validation."""

    mem_mb: float | None = None
    cpus: float | None = None
    pids: int | float | None = None


class SpawnSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One task to start (the ``spawn`` request, and each item of ``spawn_batch``)."""

    task_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdout: str
    stderr: str
    shell: bool = False
    limits: Limits = msgspec.field(default_factory=Limits)
    tty: bool = False
    sandbox: str | None = None  # where .dshell/status.json goes; default: cwd


class HelloReq(msgspec.Struct, omit_defaults=True):
    """``hello``: who is asking (logged)."""

    engine_pid: int | None = None


class SpawnBatchReq(msgspec.Struct):
    """``spawn_batch``: several spawns, answered in order."""

    tasks: list[SpawnSpec]


class SignalReq(msgspec.Struct):
    """``signal``: a number (15) or a name ("TERM", "SIGTERM")."""

    task_id: str
    signal: int | str


class TaskReq(msgspec.Struct):
    """Requests that name one task: ``sweep`` and ``cgroup_paths``."""

    task_id: str


class AckReq(msgspec.Struct):
    """``ack``: exited tasks to forget."""

    task_ids: list[str]


class JoinReq(msgspec.Struct):
    """``join``: a process to move into a task's cgroups."""

    task_id: str
    pid: int


class RunCheckReq(msgspec.Struct):
    """``run_check``: a shell command to run in a running task's cgroups (``timeout`` in s)."""

    task_id: str
    command: str
    env: dict[str, str]
    cwd: str
    timeout: float


class WriteStdinReq(msgspec.Struct):
    """``write_stdin``: text for a tty task's terminal."""

    task_id: str
    data: str


class ResizeReq(msgspec.Struct):
    """``resize``: a tty task's new window size."""

    task_id: str
    rows: int
    cols: int


class NoArgs(msgspec.Struct):
    """``list`` and ``stats`` take no fields."""


REQUEST_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "hello": HelloReq,
    "spawn": SpawnSpec,
    "spawn_batch": SpawnBatchReq,
    "signal": SignalReq,
    "sweep": TaskReq,
    "list": NoArgs,
    "ack": AckReq,
    "stats": NoArgs,
    "cgroup_paths": TaskReq,
    "join": JoinReq,
    "run_check": RunCheckReq,
    "write_stdin": WriteStdinReq,
    "resize": ResizeReq,
}


# ---------------------------------------------------------------- results


class Isolation(msgspec.Struct):
    """The isolation in force: ``kind`` is cgroup-v1, cgroup-v2 or rlimit."""

    kind: str
    controllers: list[str]
    detail: str


class HelloResult(msgspec.Struct):
    """``hello``'s answer."""

    executor_pid: int
    version: str
    boot_id: str
    isolation: Isolation
    protocol: int = PROTOCOL_VERSION


class SpawnResult(msgspec.Struct):
    """``spawn``'s answer (``existing``: the task was already known)."""

    task_id: str
    pid: int
    start_time: int
    existing: bool = False


class SpawnItem(msgspec.Struct):
    """One entry of a ``spawn_batch`` result: a SpawnResult or an error (all keys present)."""

    task_id: str
    ok: bool
    pid: int | None = None
    start_time: int | None = None
    existing: bool = False
    error: str | None = None
    message: str | None = None
    errno: int | None = None


class SpawnBatchResult(msgspec.Struct):
    """``spawn_batch``'s answer: one item per requested task."""

    results: list[SpawnItem]


class SignalResult(msgspec.Struct):
    """``signal``'s answer (False: the task had exited)."""

    delivered: bool


class SweepResult(msgspec.Struct):
    """``sweep``'s answer: processes killed, processes left."""

    killed: int
    remaining: int


class TaskInfo(msgspec.Struct):
    """A task as ``list`` reports it."""

    task_id: str
    pid: int | None
    start_time: int | None
    running: bool
    exit_code: int | None = None
    signal: int | None = None
    oom: bool = False
    lost: bool = False
    finished_at: str | None = None


class ListResult(msgspec.Struct):
    """``list``'s answer."""

    tasks: list[TaskInfo]


class AckResult(msgspec.Struct):
    """``ack``'s answer: forgotten, and still running (kept)."""

    forgotten: list[str]
    running: list[str]


class TaskStats(msgspec.Struct):
    """Usage of one running task."""

    task_id: str
    cpu_ns: int
    rss_bytes: int
    nprocs: int


class StatsResult(msgspec.Struct):
    """``stats``'s answer."""

    tasks: list[TaskStats]


class CgroupPathsResult(msgspec.Struct):
    """``cgroup_paths``'s answer."""

    paths: list[str]


class JoinResult(msgspec.Struct):
    """``join``'s answer: the controllers the process joined."""

    controllers: list[str]


class RunCheckResult(msgspec.Struct):
    """``run_check``'s answer: the shell's exit code, or the signal that killed it (SIGKILL
    with ``timed_out`` when the executor killed it at the timeout)."""

    exit_code: int | None
    signal: int | None
    timed_out: bool = False


class WriteStdinResult(msgspec.Struct):
    """``write_stdin``'s answer: bytes accepted."""

    written: int


class Empty(msgspec.Struct):
    """A result without fields (``resize``)."""


class ExitedEvent(msgspec.Struct):
    """A task ended (or, for a re-adopted task, vanished: ``lost``)."""

    task_id: str
    pid: int | None
    exit_code: int | None
    signal: int | None
    oom: bool
    lost: bool
    finished_at: str
    event: str = "exited"


class ErrorReply(msgspec.Struct, omit_defaults=True):
    """A failed request."""

    id: int
    error: str
    message: str
    errno: int | None = None
    ok: bool = False


class ProtocolError(Exception):
    """A request the executor cannot act on; becomes an error reply with ``code``."""

    def __init__(self, code: str, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errno = errno


# ---------------------------------------------------------------- encoding

_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    op: msgspec.json.Decoder(t) for op, t in REQUEST_TYPES.items()
}


def decode_request(line: bytes) -> tuple[int, str, msgspec.Struct]:
    """Parse one request line into (id, op, typed body); raise ProtocolError when invalid."""
    try:
        env = _envelope_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ProtocolError(BAD_REQUEST, f"bad request: {exc}") from None
    decoder = _decoders.get(env.op)
    if decoder is None:
        raise _Tagged(env.id, ProtocolError(UNKNOWN_OP, f"unknown op {env.op!r}"))
    try:
        return env.id, env.op, decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise _Tagged(env.id, ProtocolError(BAD_REQUEST, f"{env.op}: {exc}")) from None


class _Tagged(ProtocolError):
    """A ProtocolError for a request whose id is known (so the reply can carry it)."""

    def __init__(self, req_id: int, err: ProtocolError) -> None:
        super().__init__(err.code, err.message, err.errno)
        self.req_id = req_id


def request_id_of(err: ProtocolError) -> int:
    """The id of the request that failed to parse, or 0 when even the id was unreadable."""
    return err.req_id if isinstance(err, _Tagged) else 0


def encode_ok(req_id: int, result: msgspec.Struct) -> bytes:
    """``{"id": N, "ok": true, ...result}`` + newline, built without an intermediate dict."""
    body = _encoder.encode(result)
    head = b'{"id":%d,"ok":true' % req_id
    if body == b"{}":
        return head + b"}\n"
    return head + b"," + body[1:] + b"\n"


def encode_error(req_id: int, err: ProtocolError) -> bytes:
    """An error reply line."""
    reply = ErrorReply(id=req_id, error=err.code, message=err.message, errno=err.errno)
    return _encoder.encode(reply) + b"\n"


def encode_event(event: msgspec.Struct) -> bytes:
    """An event line."""
    return _encoder.encode(event) + b"\n"


def encode_request(req_id: int, op: str, fields: dict[str, Any]) -> bytes:
    """A request line (used by the clients)."""
    return _encoder.encode({"id": req_id, "op": op, **fields}) + b"\n"
