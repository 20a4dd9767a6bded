"""Service verbs as functions: listing here, the rest through the backend's service_call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backend import Capability, require
from ..errors import NotFoundError, UsageError
from .fanout import Fanned, fan_out, target_mounts

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..model import Service
    from ..session import Session
    from .refs import TaskRef

#: verbs that change a rolling deployment need DEPLOYMENTS too
ROLLING = frozenset({"deploy", "restart", "rollback", "pause", "resume", "abort"})


def ls(session: Session, path: str | None) -> Fanned[Service]:
    def call(backend: Backend, mount: Mount) -> list[Service]:
        require(backend, Capability.SERVICES, "svc ls")
        return backend.list_services()

    return fan_out(session, target_mounts(session, path), call)


def locate(session: Session, name: str) -> tuple[Mount, Backend, str]:
    """A service by NAME (in the current mount, else /local) or by /MOUNT/svc/NAME."""
    from .launch import launch_mount

    if "/" in name:
        from ..namespace import resolve

        res = resolve(session.mounts(), session.abspath(name))
        parts = res.parts
        if res.mount is None or len(parts) != 2 or parts[0] != "svc":
            raise UsageError(f"{name}: not a service path (expected /MOUNT/svc/NAME)")
        mount, name = res.mount, parts[1]
    else:
        mount = launch_mount(session, None)
    return mount, session.backend(mount), name


def call(session: Session, verb: str, name: str, **params: Any) -> Any:
    mount, backend, svc_name = locate(session, name)
    require(backend, Capability.SERVICES, f"svc {verb}")
    if verb in ROLLING:
        require(backend, Capability.DEPLOYMENTS, f"svc {verb}")
    if verb == "status":
        svc = backend.get_service(svc_name)
        svc.mount = mount.target
        return svc
    return backend.service_call(verb, svc_name, **params)


def kill_and_scale(session: Session, trefs: list[TaskRef]) -> None:
    """`kill --scale`: kill service instances and lower their service's count."""
    for tref in trefs:
        if not tref.task.service:
            raise NotFoundError(f"{tref.task.id} is not a service instance (drop --scale)")
        require(tref.backend, Capability.SERVICES, "kill --scale")
        tref.backend.service_call("kill_scale", tref.task.service, task_id=tref.task.id)
