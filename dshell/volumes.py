"""Persistent volumes: the one parser of names, sizes and ``NAME:PATH[:ro]`` references.

Shared by the CLI (``mount -t volume``, ``run --volume``, ``svc deploy --volume``) and the
engines, which check again what reaches them. Cheap to import: it is on the ``run`` path.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import NamedTuple

from .errors import UsageError

# letters, digits and ``_ . # -``; no '/', no '..' (a volume's name is a directory name)
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.#-]{0,127}$")
MODES = ("rw", "ro")
# sandbox entries a volume may not hide (the task's output and the engine's own files)
RESERVED_PATHS = frozenset({"stdout", "stderr", ".dshell"})


class VolumeRef(NamedTuple):
    """One ``--volume NAME:PATH[:ro]``: which volume, where the task sees it, read-only."""

    name: str
    path: str  # relative: inside the sandbox; absolute: in the task's mount namespace
    read_only: bool = False

    def __str__(self) -> str:
        return f"{self.name}:{self.path}" + (":ro" if self.read_only else "")


def check_name(name: str, what: str = "volume") -> str:
    """``name`` if it is a valid volume name; UsageError saying why not."""
    if not name:
        raise UsageError(f"{what}: a volume name is required")
    if "/" in name or ".." in name:
        raise UsageError(f"{what}: bad volume name {name!r} ('/' and '..' are not allowed)")
    if not NAME.match(name):
        raise UsageError(
            f"{what}: bad volume name {name!r} (1-128 letters, digits, '_', '.', '#', '-'; "
            "starting with a letter, digit or '_')"
        )
    return name


def check_path(path: str, what: str = "--volume") -> str:
    """The normalized container path (UsageError for empty, '..', NUL, reserved names)."""
    if not path or "\x00" in path:
        raise UsageError(f"{what}: the container path is empty or contains a NUL byte")
    pure = PurePosixPath(path)
    if ".." in pure.parts:
        raise UsageError(f"{what}: '..' is not allowed in the container path {path!r}")
    if pure.is_absolute():
        if str(pure) == "/":
            raise UsageError(f"{what}: a volume cannot be mounted over '/'")
        return str(pure)
    norm = str(pure)
    if norm == ".":
        raise UsageError(f"{what}: the container path must name a directory, not the sandbox")
    if pure.parts[0] in RESERVED_PATHS:
        raise UsageError(f"{what}: {path!r} would hide the sandbox's {pure.parts[0]}")
    return norm


def parse_ref(text: str, what: str = "--volume") -> VolumeRef:
    """``NAME:PATH``, ``NAME:PATH:ro`` or ``NAME:PATH:rw`` → VolumeRef."""
    name, sep, rest = text.partition(":")
    if not sep:
        raise UsageError(f"{what}: expected NAME:PATH[:ro], got {text!r}")
    check_name(name, what)
    path, mode = rest, "rw"
    head, sep2, tail = rest.rpartition(":")
    if sep2 and tail in MODES:
        path, mode = head, tail
    return VolumeRef(name, check_path(path, what), mode == "ro")


def parse_size(text: str, what: str = "volume") -> float:
    """``128M``, ``1G``, ``512`` (MiB) → MiB; UsageError (prefixed with ``what``) for zero,
    negative or garbage."""
    from .core.launch import parse_size as parse

    try:
        value = parse(text.strip(), "size")
    except UsageError as exc:
        raise UsageError(f"{what}: {exc.message}") from None
    return check_size(value, f"{what}: size")


def check_size(value: float, what: str = "size") -> float:
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what}: must be a positive size in MiB, not {value:g}")
    return value


def parse_service_volume(text: str, what: str = "--volume") -> tuple[str, float]:
    """``svc deploy --volume PATH:SIZE`` (one persistent volume per instance) → (path, MiB)."""
    path, sep, size = text.rpartition(":")
    if not sep or not path:
        raise UsageError(f"{what}: expected CONTAINER_PATH:SIZE (e.g. data:128M), got {text!r}")
    norm = check_path(path, what)
    if "/" in norm:
        raise UsageError(f"{what}: a service's volume path is one relative name, like 'data'")
    return norm, parse_size(size, what)


def instance_volume_name(service: str, index: int, base: str) -> str:
    """The volume of one service instance (Marathon: per-instance persistent volumes):
    ``<service>#<index>-<base>``, '/' of group paths as '.', other odd characters as '_'."""
    raw = f"{service.strip('/').replace('/', '.')}#{index}-{base}"
    name = re.sub(r"[^A-Za-z0-9_.#-]", "_", raw).replace("..", "._")
    if not NAME.match(name[:1]):
        name = "_" + name
    return name[:128]
