"""Checks on a spawn request, so that a bad field is a clear BAD_REQUEST, never a traceback."""

from __future__ import annotations

import re

from .protocol import BAD_REQUEST, ProtocolError, SpawnSpec

# Task ids name cgroup directories and journal entries: no '/', no whitespace, bounded.
_TASK_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+=,~-]{0,199}")
MIN_MEM_MB = 4  # below this even exec fails; a clear error beats an instant OOM


def validate_task_id(task_id: str) -> None:
    """Raise BAD_REQUEST unless ``task_id`` is usable as a cgroup directory name."""
    if not _TASK_ID.fullmatch(task_id):
        raise ProtocolError(
            BAD_REQUEST,
            f"task_id {task_id[:80]!r}: 1-200 characters of [A-Za-z0-9_.:@+=,~-], "
            "not starting with a punctuation character",
        )


def validate_spec(spec: SpawnSpec) -> None:
    """Raise BAD_REQUEST naming the first bad field of ``spec``."""
    validate_task_id(spec.task_id)
    if not spec.argv or not spec.argv[0]:
        _bad(spec, "argv", "must not be empty")
    if any("\0" in a for a in spec.argv):
        _bad(spec, "argv", "contains a NUL character")
    for key, value in spec.env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            _bad(spec, "env", f"invalid variable {key[:40]!r}")
    for field in ("cwd", "stdout", "stderr", "sandbox"):
        path = getattr(spec, field)
        if path is None:
            continue
        if not path.startswith("/") or "\0" in path:
            _bad(spec, field, f"must be an absolute path, got {path[:80]!r}")
    lim = spec.limits
    if lim.mem_mb is not None and lim.mem_mb < MIN_MEM_MB:
        _bad(spec, "limits.mem_mb", f"must be at least {MIN_MEM_MB}")
    if lim.cpus is not None and not lim.cpus > 0:
        _bad(spec, "limits.cpus", "must be positive")
    if lim.pids is not None:
        if lim.pids < 1 or lim.pids != int(lim.pids):
            _bad(spec, "limits.pids", "must be a whole number, at least 1")
        lim.pids = int(lim.pids)


def _bad(spec: SpawnSpec, field: str, why: str) -> None:
    raise ProtocolError(BAD_REQUEST, f"task {spec.task_id}: {field} {why}")
