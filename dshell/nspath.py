"""Namespace paths: which mounts a path names or spans, for every part of dshell.

Only :mod:`posixpath` is imported (it is loaded with the interpreter): the early start of
``dshell ps`` (:mod:`dshell.prestart`) uses these functions before anything else is imported,
and :mod:`dshell.namespace` uses the same ones, so both agree on which mounts a path spans.
"""

from __future__ import annotations

import posixpath

TYPE_CHECKING = False  # typing itself costs ~10 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol, TypeVar

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
