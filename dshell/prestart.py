"""The early start of ``dshell ps``, planned once and cached.

``dshell ps PATH`` on a Slurm mount waits mostly for the listing ``squeue``, so dshell starts it
before its own heavy imports (the backend packages' ``prefetch_listing`` hooks: "Early
listings" in :mod:`dshell.backend`). To know what to start it must know the mounts PATH spans
(the mount table, TOML) and which package provides each mount type's hook (the installed
backends' entry points). Reading those took longer than everything else before the command
started: tomllib, json, pathlib, typing, the entry-point cache and subprocess cost 30-80 ms of
imports on an interpreter that loads nothing else at start-up, all of it before ``squeue``
could begin.

So the first ``ps`` after a change saves the plan (each mount's target, type, source, options
and hook package) in ``STATE/early.cache`` with :mod:`marshal`, keyed on what the plan was
made from: the mount table's text itself (reading it is cheap, parsing it is not), the
interpreter, the ``sys.path`` directories' mtimes (installing or removing a distribution
changes them) and ``DSHELL_BACKENDS``. The following ones read it with ``os``, ``sys`` and
``marshal``, which the interpreter has loaded before dshell runs. A plan that does not match,
or cannot be read, is made again from the table.

The plan is only a hint, as the early start always was: a backend uses an early process only
if the session, having read and checked the table itself, asks for exactly the same command.
"""

from __future__ import annotations

import marshal
import os
import sys

from . import xdg
from .nspath import mounts_under, normpath

TYPE_CHECKING = False  # typing itself costs ~10 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias, TypeGuard

    Key: TypeAlias = tuple[Any, ...]

#: The plan's file in the state dir.
CACHE_FILE = "early.cache"


class Planned:
    """One mount of the plan: the table's fields, and the package carrying its type's hook
    (None: no backend of that type is installed)."""

    __slots__ = ("options", "package", "source", "target", "type")

    def __init__(
        self, target: str, type_: str, source: str, options: dict[str, str], package: str | None
    ):
        self.target = target
        self.type = type_
        self.source = source
        self.options = options
        self.package = package

    def fields(self) -> tuple[str, str, str, dict[str, str], str | None]:
        return (self.target, self.type, self.source, self.options, self.package)


def path_key() -> list[list[object]]:
    """What installing or removing a distribution changes: sys.path dirs and their mtimes."""
    key: list[list[object]] = []
    cwd = os.getcwd()
    for entry in sys.path:
        if entry in ("", cwd):  # `python -m`'s cwd entry: its mtime changes all the time
            continue
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def key() -> Key | None:
    """What a plan is made from, as it is now; None when there is no mount table (then only
    ``/local`` exists, whose listing is no command) or it cannot be read."""
    try:
        with open(xdg.mount_table(), "rb") as f:
            table = f.read()
    except OSError:
        return None
    return (sys.hexversion, table, os.environ.get("DSHELL_BACKENDS", ""), path_key())


def table(made_from: Key) -> bytes:
    """The mount table's text a key was made from (the plan is made from exactly that)."""
    return bytes(made_from[1])


def cached(name: str, made_from: Any) -> object:
    """The value saved as ``name`` in the state dir if it was made from ``made_from``, else
    None. The caller checks the value's shape: a torn or foreign file is never trusted."""
    try:
        with open(os.path.join(xdg.state_home(), name), "rb") as f:
            saved = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None  # none yet, or unreadable (another Python's format, a torn file)
    if isinstance(saved, tuple) and len(saved) == 2 and saved[0] == made_from:
        return saved[1]
    return None


def keep(name: str, made_from: Any, value: Any) -> None:
    """Save ``value`` as ``name`` in the state dir (best effort: without it, the next reader
    makes the value again). Only marshal's types: str, int, None, tuple, list, dict."""
    path = os.path.join(xdg.state_home(), name)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump((made_from, value), f)
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def mount_rows(value: object, extra: int = 0) -> TypeGuard[list[tuple[Any, ...]]]:
    """Whether a cached value is a list of mount rows: (target, type, source, options) of
    strings, then ``extra`` fields that are strings or None."""
    return isinstance(value, list) and all(
        isinstance(row, tuple)
        and len(row) == 4 + extra
        and all(isinstance(f, str) for f in row[:3])
        and isinstance(row[3], dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in row[3].items())
        and all(f is None or isinstance(f, str) for f in row[4:])
        for row in value
    )


def load(current: Key) -> list[Planned] | None:
    """The saved plan if it was made from ``current``, else None."""
    rows = cached(CACHE_FILE, current)
    if not mount_rows(rows, extra=1):
        return None
    return [Planned(*row) for row in rows]


def save(made_from: Key, plan: list[Planned]) -> None:
    """Keep ``plan`` for the next ``ps``."""
    keep(CACHE_FILE, made_from, [p.fields() for p in plan])


def package_of(target: str) -> str:
    """The top-level package of a backend class (``dshell_slurm.backend:SlurmBackend``)."""
    return target.partition(":")[0].split(".")[0]


def hook(package: str) -> Callable[[str, dict[str, str]], Any] | None:
    """``prefetch_listing`` of ``package``, importing only the package itself (its
    ``__init__``, never the backend module); None if it has none or fails to import (loading
    the backend reports that)."""
    try:
        found = getattr(__import__(package), "prefetch_listing", None)
    except (ImportError, SyntaxError):
        return None
    return found if callable(found) else None


def start(plan: list[Planned], path: str) -> dict[str, Any]:
    """Start the listing of every planned mount ``path`` spans that has a hook, by target."""
    started: dict[str, Any] = {}
    for mount in mounts_under(plan, normpath(path, "/")):
        # a framework's row takes its address from its host (dshell.frameworks): not started
        if mount.package is None or "fw" in mount.options:
            continue
        found = hook(mount.package)
        handle = found(mount.source, dict(mount.options)) if found is not None else None
        if handle is not None:
            started[mount.target] = handle
    return started
