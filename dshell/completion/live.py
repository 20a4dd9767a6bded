"""Live completion values: task ids, services, agents and namespace paths, per mount.

Asking a cluster may be slow or hang, so fetching (:func:`fetch`, :func:`gather`) happens in
worker threads with a deadline, and completion itself (:func:`candidates`) only reads a
:class:`Snapshot` that is already in memory. Nothing here imports click or prompt_toolkit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ..backend import Capability, TaskQuery
from ..errors import DshellError
from ..namespace import MOUNT_DIRS, children, normpath, resolve

if TYPE_CHECKING:
    from ..backend import Mount
    from ..model import FileEntry
    from ..plugins import Registry

T = TypeVar("T")

#: (value, description) — the description is shown by the REPL, zsh and fish.
Candidate = tuple[str, str]
#: Lists a sandbox directory (an absolute namespace path) or returns None when it cannot.
ListDir = Callable[[str], "list[FileEntry] | None"]


@dataclass(frozen=True)
class MountIds:
    """What one mount answered (or why it did not)."""

    target: str
    tasks: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    error: str | None = None  # "unreachable: …", "slow: no answer in 2s", …
    at: float = 0.0  # time.time() of the answer


@dataclass(frozen=True)
class Snapshot:
    """Everything completion knows about the clusters at one moment (immutable)."""

    mounts: tuple[Mount, ...] = ()
    ids: Mapping[str, MountIds] = field(default_factory=dict)
    backends: tuple[str, ...] = ()


def fetch(registry: Registry, mount: Mount) -> MountIds:
    """Ask one mount for its ids. Blocks as long as the backend does: call it in a thread."""
    try:
        backend = registry.backend_for(quiet(registry, _concrete(registry, mount)))
        caps = backend.capabilities
        tasks = (
            [t.id for t in backend.list_tasks(TaskQuery(all=True))]
            if Capability.TASKS in caps
            else []
        )
        services = [s.name for s in backend.list_services()] if Capability.SERVICES in caps else []
        agents = [a.id for a in backend.list_agents()] if Capability.AGENTS in caps else []
    except DshellError as exc:
        return MountIds(mount.target, error=f"{exc.code.name.lower()}: {exc.message}", at=_now())
    except Exception as exc:  # noqa: BLE001 - a plugin bug must not break completion; it is shown
        return MountIds(mount.target, error=f"error: {type(exc).__name__}: {exc}", at=_now())
    return MountIds(mount.target, tuple(tasks), tuple(services), tuple(agents), at=_now())


def _concrete(registry: Registry, mount: Mount) -> Mount:
    """A framework's row (``fw=NAME,host=PATH``) resolved to what serves it, as a command
    would open it (dshell.frameworks.resolve), so its ids are the framework's own, not its
    host's."""
    if "fw" not in mount.options:
        return mount
    from ..frameworks import resolve
    from ..session import Session

    return resolve(Session(_registry=registry), mount)


def quiet(registry: Registry, mount: Mount) -> Mount:
    """The mount as completion asks it: never starting a cluster as a side effect (a backend
    that offers an ``autostart`` option, like the embedded engine's, gets ``autostart=no``)."""
    if "autostart" not in registry.load(mount.type).options:
        return mount
    import msgspec

    return msgspec.structs.replace(mount, options={**mount.options, "autostart": "no"})


def _now() -> float:
    return time.time()


def bounded(fn: Callable[[], T], timeout: float) -> T | None:
    """``fn()`` in a daemon thread; None if it fails or has not answered within ``timeout``."""
    box: list[T] = []

    def run() -> None:
        try:
            box.append(fn())
        except Exception:  # noqa: BLE001 - completion offers nothing rather than a traceback
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return box[0] if box else None


def gather(registry: Registry, mounts: Iterable[Mount], timeout: float) -> dict[str, MountIds]:
    """Fetch several mounts at once; a mount silent past ``timeout`` is marked slow."""
    results: dict[str, MountIds] = {}
    threads = []
    for m in mounts:

        def work(m: Mount = m) -> None:
            results[m.target] = fetch(registry, m)

        t = threading.Thread(target=work, daemon=True, name=f"dshell-ids-{m.target}")
        t.start()
        threads.append((m, t))
    deadline = time.monotonic() + timeout
    for m, t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if m.target not in results:
            results[m.target] = MountIds(m.target, error=f"slow: no answer in {timeout:g}s")
    return results


# ---- candidates ------------------------------------------------------------------------------


def scope(snap: Snapshot, cwd: str) -> list[Mount]:
    """The mounts a bare id refers to: the current one, or all of them above every mount."""
    current = resolve(list(snap.mounts), cwd).mount
    return [current] if current else list(snap.mounts)


def candidates(
    kind: str, prefix: str, snap: Snapshot, cwd: str, list_dir: ListDir | None = None
) -> list[Candidate]:
    """Values of a live kind that start with ``prefix``, sorted, without duplicates."""
    if kind == "ref":
        kind = "path" if "/" in prefix else "task"
    if kind == "path":
        return complete_path(prefix, snap, cwd, list_dir)
    if kind == "mount":
        found = [(m.target, f"{m.type} {m.source}".strip()) for m in snap.mounts]
    elif kind == "backend":
        found = [(b, "backend") for b in snap.backends]
    elif kind in ("task", "service", "agent"):
        found = []
        for m in scope(snap, cwd):
            ids = snap.ids.get(m.target)
            if ids is not None:
                found += [(v, f"{kind} on {m.target}") for v in getattr(ids, kind + "s")]
    else:
        return []
    return _unique(c for c in found if c[0].startswith(prefix))


def _unique(items: Iterable[Candidate]) -> list[Candidate]:
    seen: dict[str, str] = {}
    for value, meta in items:
        seen.setdefault(value, meta)
    return sorted(seen.items())


def complete_path(
    prefix: str, snap: Snapshot, cwd: str, list_dir: ListDir | None = None
) -> list[Candidate]:
    """Namespace paths: directories end in ``/``; the typed directory part is kept as is."""
    cut = prefix.rfind("/") + 1
    head, base = prefix[:cut], prefix[cut:]
    where = normpath(head or ".", cwd)
    out = [
        (head + name + ("/" if is_dir else ""), meta)
        for name, is_dir, meta in entries(where, snap, list_dir)
        if name.startswith(base)
    ]
    return _unique(out)


def entries(where: str, snap: Snapshot, list_dir: ListDir | None) -> list[tuple[str, bool, str]]:
    """(name, is a directory, description) of what is directly under ``where``."""
    mounts = list(snap.mounts)
    targets = {m.target for m in mounts}
    below = [
        (n, True, "mount" if f"{where.rstrip('/')}/{n}" in targets else "dir")
        for n in children(mounts, where)
    ]
    res = resolve(mounts, where)
    if res.mount is None:
        return below
    parts = res.parts
    ids = snap.ids.get(res.mount.target) or MountIds(res.mount.target)
    if not parts:
        return [(d, True, "dir") for d in MOUNT_DIRS] + below
    if parts == ["tasks"]:
        return [(t, True, "task") for t in ids.tasks]
    if parts == ["agents"]:
        return [(a, False, "agent") for a in ids.agents]
    if parts == ["svc"]:
        return [(s, False, "service") for s in ids.services]
    if parts[0] == "tasks" and list_dir is not None:
        found = list_dir(where) or []
        return [(e.name, e.kind == "dir", e.kind) for e in found]
    return below
