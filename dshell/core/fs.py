"""Walking the namespace: what `ls`, `cd`, `cat` and `tail` see at a path.

/                        mounts (and directories leading to nested mounts)
/M                       tasks agents svc vol fw
/M/tasks                 tasks (finished too)
/M/tasks/ID[/SUB…]       the task's sandbox (files through the backend, never outside it)
/M/agents[/ID]           agents
/M/svc[/NAME]            services
/M/vol, /M/fw            volumes, frameworks (+ clusters mounted below /M/fw)

A backend that declares BROWSE (e.g. ``zk``) serves everything below its mount itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..backend import Capability, TaskQuery, require
from ..errors import NotFoundError, UsageError
from ..model import FileEntry
from ..namespace import MOUNT_DIRS, Resolved, children, resolve

if TYPE_CHECKING:
    from ..session import Session


def locate(session: Session, path: str | None) -> Resolved:
    return resolve(session.mounts(), session.abspath(path))


def _mount_entries(session: Session, where: str) -> list[FileEntry]:
    mounts = {m.target: m for m in session.mounts()}
    out = []
    for name in children(session.mounts(), where):
        full = where.rstrip("/") + "/" + name
        m = mounts.get(full)
        out.append(
            FileEntry(
                name=name,
                kind="mount" if m else "dir",
                detail=f"{m.type} {m.source}".strip() if m else None,
            )
        )
    return out


def ls(session: Session, path: str | None, *, all_tasks: bool = True) -> list[FileEntry]:
    res = locate(session, path)
    if res.mount is None:
        entries = _mount_entries(session, res.path)
        if not entries and res.path != "/":
            raise NotFoundError(f"{res.path}: no such path")
        return entries
    backend = session.backend(res.mount)
    parts = res.parts
    if Capability.BROWSE in backend.capabilities:
        return backend.browse("/".join(parts))
    if not parts:
        return [FileEntry(name=d, kind="dir") for d in MOUNT_DIRS]
    head, rest = parts[0], parts[1:]
    if head == "tasks":
        if not rest:
            require(backend, Capability.TASKS, "ls")
            return [
                FileEntry(name=t.id, kind="task", mtime=t.created_at, detail=t.state)
                for t in backend.list_tasks(TaskQuery(all=all_tasks))
            ]
        require(backend, Capability.FILES, "ls")
        return backend.list_files(rest[0], "/".join(rest[1:]))
    if head == "agents" and not rest:
        return [
            FileEntry(name=a.id, kind="agent", detail=f"{a.hostname} {a.state}")
            for a in backend.list_agents()
        ]
    if head == "svc" and not rest:
        require(backend, Capability.SERVICES, "ls")
        return [
            FileEntry(name=s.name, kind="service", detail=f"{s.running}/{s.instances} {s.state}")
            for s in backend.list_services()
        ]
    if head == "fw" and not rest and Capability.SERVICES in backend.capabilities:
        from .fw import frameworks_on  # frameworks launched by the shell run as services

        fws = frameworks_on(backend, res.mount.target)
        known = {f.name for f in fws}
        return [
            FileEntry(name=f.name, kind="framework", detail=f"{f.kind} {f.state}") for f in fws
        ] + [e for e in _mount_entries(session, res.path) if e.name not in known]
    if head in ("vol", "fw") and not rest:
        nested = _mount_entries(session, res.path)
        cap = Capability.VOLUMES if head == "vol" else Capability.FRAMEWORKS
        if cap not in backend.capabilities:
            return nested
        objs = backend.admin_call(f"{head}_ls")
        names = {e.name for e in nested}
        own = [
            FileEntry(name=o.name, kind="volume" if head == "vol" else "framework")
            for o in objs
            if o.name not in names and getattr(o, "attached", True)  # umount: not listed
        ]
        return own + nested
    if head in ("agents", "svc") and len(rest) == 1:
        return [FileEntry(name=rest[0], kind="agent" if head == "agents" else "service")]
    raise NotFoundError(f"{res.path}: no such path")


def check_dir(session: Session, path: str) -> str:
    """The absolute path, if `cd` may go there."""
    res = locate(session, path)
    if res.mount is None:
        if res.path == "/" or children(session.mounts(), res.path):
            return res.path
        raise NotFoundError(f"{res.path}: no such directory")
    parts = res.parts
    if Capability.BROWSE in session.backend(res.mount).capabilities:
        session.backend(res.mount).browse("/".join(parts))
        return res.path
    if not parts or (len(parts) == 1 and parts[0] in MOUNT_DIRS):
        return res.path
    if parts[0] == "tasks":
        backend = session.backend(res.mount)
        backend.get_task(parts[1])
        if len(parts) > 2:
            backend.list_files(parts[1], "/".join(parts[2:]))
        return res.path
    if parts[0] == "fw" and children(session.mounts(), res.path):
        return res.path
    raise NotFoundError(f"{res.path}: not a directory")


def read(session: Session, path: str, *, offset: int = 0, follow: bool = False) -> Iterator[bytes]:
    """Bytes of a sandbox file (`/M/tasks/ID/FILE`)."""
    res = locate(session, path)
    parts = res.parts
    if res.mount is not None and Capability.BROWSE in session.backend(res.mount).capabilities:
        backend = session.backend(res.mount)
        if follow:
            require(backend, Capability.FOLLOW, "tail -f")
        return backend.read_path("/".join(parts), offset=offset)
    if res.mount is None or len(parts) < 3 or parts[0] != "tasks":
        raise UsageError(
            f"{res.path}: not a file in a task sandbox (expected /MOUNT/tasks/ID/FILE)"
        )
    backend = session.backend(res.mount)
    require(
        backend, Capability.FOLLOW if follow else Capability.FILES, "tail -f" if follow else "cat"
    )
    return backend.read_file(parts[1], "/".join(parts[2:]), offset=offset, follow=follow)


def describe(session: Session, path: str) -> Any:
    """The object behind an agent or service path, for `cat /M/agents/ID`."""
    res = locate(session, path)
    parts = res.parts
    if res.mount is None or len(parts) != 2 or parts[0] not in ("agents", "svc"):
        return None
    backend = session.backend(res.mount)
    if Capability.BROWSE in backend.capabilities:
        return None  # its own tree: `cat` reads the file
    if parts[0] == "agents":
        for a in backend.list_agents():
            if a.id == parts[1]:
                a.mount = res.mount.target
                return a
        raise NotFoundError(f"{res.path}: no such agent")
    require(backend, Capability.SERVICES, "cat")
    svc = backend.get_service(parts[1])
    svc.mount = res.mount.target
    return svc
