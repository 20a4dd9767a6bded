"""run and exec as functions: build a RunSpec, pick the mount, submit, follow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..backend import Capability, require
from ..errors import NotFoundError, UnsupportedError, UsageError
from ..namespace import resolve

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..model import OutputChunk, RunSpec, Task
    from ..session import Session

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$", re.IGNORECASE)
_MIB = {"": 1.0, "b": 1 / 2**20, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}


def parse_size(text: str, what: str = "size") -> float:
    """'512' (MiB), '512M', '2G', '1.5GiB', '4096K' → MiB."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"bad {what} {text!r}: expected e.g. 512, 512M, 2G")
    unit = (m.group(2) or "").lower()[:1]
    value = float(m.group(1)) * _MIB[unit]
    if value <= 0:
        raise UsageError(f"bad {what} {text!r}: must be positive")
    return value


def launch_mount(session: Session, on: str | None) -> Mount:
    """The mount a launch goes to: --on PATH, else the current one, else /local."""
    mounts = session.mounts()
    if on:
        res = resolve(mounts, session.abspath(on))
        if res.mount is None:
            raise NotFoundError(f"{on}: no mount there")
        return res.mount
    current = resolve(mounts, session.cwd).mount
    if current:
        return current
    local = [m for m in mounts if m.target == "/local"]
    if local:
        return local[0]
    raise UsageError("not inside a mount: cd into one or pass --on PATH")


def submit(session: Session, mount: Mount, spec: RunSpec) -> tuple[Backend, list[Task]]:
    backend = session.backend(mount)
    require(backend, Capability.RUN, "run")
    if spec.idempotency_key:
        require(backend, Capability.IDEMPOTENCY, "run --idempotency-key")
    if spec.tty:
        require(backend, Capability.TTY, "run -t")
    if spec.after:
        require(backend, Capability.DEPENDENCIES, "run --after")
    if spec.volumes:
        require(backend, Capability.VOLUMES, "run --volume")
    if spec.tier is not None or spec.priority is not None:
        require(backend, Capability.PREEMPTION, "run --tier/--priority")
    if spec.partition and "partition" not in backend.options:  # a cluster with partitions
        raise UnsupportedError(backend.name, "partitions", "run --partition")
    tasks = backend.submit(spec)
    for t in tasks:
        t.mount = mount.target
    return backend, tasks


def attach(backend: Backend, task: Task) -> Iterator[OutputChunk]:
    require(backend, Capability.ATTACH, "run (attached)")
    return backend.attach(task.id)
