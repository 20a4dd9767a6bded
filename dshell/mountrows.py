"""Mount paths and a first read of the mount table, importing only the standard library.

The fast path (:mod:`dshell.fastpath`) reads the table here to start a backend's listing
before dshell has finished starting (msgspec and the backends cost tens of ms to import). The
path functions are the ones :mod:`dshell.namespace` uses, so both agree on which mounts a path
spans. What :func:`read_rows` reads is only a hint: a backend uses an early listing only if
the table, read and checked by the session, asks for exactly the same command.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import NamedTuple, Protocol, TypeVar

#: The mount table's file name in the config dir.
TABLE_FILE = "mounts.toml"


class _Targeted(Protocol):
    @property
    def target(self) -> str: ...


M = TypeVar("M", bound=_Targeted)


def normpath(path: str, cwd: str = "/") -> str:
    """An absolute, normalized namespace path (``..`` never climbs above ``/``)."""
    joined = path if path.startswith("/") else posixpath.join(cwd, path)
    norm = posixpath.normpath(joined)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    return norm


def serving(mounts: Sequence[M], path: str) -> M | None:
    """The mount serving an absolute path: the longest target that is the path or above it."""
    best: M | None = None
    for m in mounts:
        if (path == m.target or path.startswith(m.target + "/")) and (
            best is None or len(m.target) > len(best.target)
        ):
            best = m
    return best


def mounts_under(mounts: Sequence[M], path: str) -> list[M]:
    """The mounts a path spans: the one serving it, or every mount below it (``ps /``)."""
    mount = serving(mounts, path)
    if mount is not None:
        return [mount]
    prefix = path.rstrip("/") + "/"
    return [m for m in mounts if m.target.startswith(prefix) or path == "/"]


class Row(NamedTuple):
    """A mount-table row as :func:`read_rows` read it (the table's own fields)."""

    target: str
    type: str
    source: str
    options: dict[str, str]


def read_rows(text: str) -> list[Row] | None:
    """The table's rows as far as they are well formed (a hint: the session reads the table
    again, and reports what is wrong with it); None when it is not TOML at all."""
    import tomllib  # ~5 ms; msgspec and the backends are what the early start must not wait for

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    rows = data.get("mount")
    out = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        target, type_, source = row.get("target"), row.get("type"), row.get("source", "")
        options = row.get("options", {})
        if isinstance(target, str) and target and isinstance(type_, str) and type_:
            opts = {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}
            out.append(Row(normpath(target), type_, str(source), opts))
    return out
