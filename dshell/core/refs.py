"""Task references: exact id, unique prefix, glob, a namespace path, or ``-`` for stdin.

``kill web.01jh`` (prefix), ``kill 'web.*'`` (glob), ``kill /hpc/1234`` (path),
``dshell ps -q --state failed | dshell kill -`` (ids on stdin).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..backend import TaskQuery
from ..errors import AmbiguousError, NotFoundError, UsageError
from ..namespace import resolve

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..model import Task
    from ..session import Session

GLOB_CHARS = frozenset("*?[")


@dataclass
class TaskRef:
    mount: Mount
    backend: Backend
    task: Task


def read_stdin_ids(session: Session) -> list[str]:
    if session.stdin_is_script:
        raise UsageError("'-' reads ids from stdin, but stdin is the runbook itself")
    if session.env.stdin_isatty:
        raise UsageError("'-' reads ids from stdin, but stdin is a terminal (pipe ids in)")
    return [line.strip() for line in session.env.stdin.read().splitlines() if line.strip()]


def expand_stdin(session: Session, refs: list[str] | tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for ref in refs:
        out.extend(read_stdin_ids(session) if ref == "-" else [ref])
    return out


def _split(session: Session, ref: str) -> tuple[list[Mount], str]:
    """The mounts to search and the id part of a reference."""
    if "/" in ref:
        res = resolve(session.mounts(), session.abspath(ref))
        if res.mount is None:
            raise NotFoundError(f"{ref}: no mount there")
        parts = res.parts
        if parts[:1] == ["tasks"]:
            parts = parts[1:]
        if len(parts) != 1:
            raise UsageError(f"{ref}: not a task path (expected MOUNT/tasks/ID)")
        return [res.mount], parts[0]
    current = resolve(session.mounts(), session.cwd).mount
    return ([current] if current else session.mounts()), ref


def resolve_tasks(
    session: Session, refs: list[str], *, finished: bool = True, one: bool = False
) -> list[TaskRef]:
    """Every task the references name (deduplicated, in order).

    A prefix must be unique; a glob may match many. ``one=True`` requires each reference to
    name exactly one task. ``finished=False`` only considers active tasks for prefixes/globs.
    """
    found: dict[tuple[str, str], TaskRef] = {}
    for ref in refs:
        if not ref:
            raise UsageError("empty task reference")
        for tref in _resolve_one(session, ref, finished=finished, one=one):
            found.setdefault((tref.mount.target, tref.task.id), tref)
    return list(found.values())


def _resolve_one(session: Session, ref: str, *, finished: bool, one: bool) -> list[TaskRef]:
    mounts, ident = _split(session, ref)
    is_glob = bool(GLOB_CHARS & set(ident))
    if not is_glob:
        for mount in mounts:  # exact id: one cheap lookup per mount
            backend = session.backend(mount)
            try:
                return [TaskRef(mount, backend, backend.get_task(ident))]
            except NotFoundError:
                continue
    matches: list[TaskRef] = []
    for mount in mounts:
        backend = session.backend(mount)
        for task in backend.list_tasks(TaskQuery(all=finished)):
            hit = fnmatch.fnmatchcase(task.id, ident) if is_glob else task.id.startswith(ident)
            if hit:
                task.mount = mount.target
                matches.append(TaskRef(mount, backend, task))
    if not matches:
        raise NotFoundError(f"no task matches {ref!r}")
    if len(matches) > 1 and (one or not is_glob):
        names = [f"{m.mount.target}/tasks/{m.task.id}" for m in matches]
        raise AmbiguousError(f"{ref!r} matches {len(matches)} tasks", names)
    return matches
