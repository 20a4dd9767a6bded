"""Service verbs as functions: listing here, the rest through the backend's service_call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backend import Capability, require
from ..errors import DeploymentFailed, NotFoundError, TimeoutExpired, UsageError
from .fanout import Fanned, fan_out, target_mounts

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..model import Deployment, Service
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

    if name.startswith("/"):
        from ..namespace import resolve

        res = resolve(session.mounts(), name)
        parts = res.parts
        if res.mount is not None:
            if len(parts) < 2 or parts[0] != "svc":
                raise UsageError(f"{name}: not a service path (expected /MOUNT/svc/NAME)")
            return res.mount, session.backend(res.mount), "/".join(parts[1:])
    # a service id (`web`, `shop/web`, `/shop/web`) in the current mount, else /local
    mount = launch_mount(session, None)
    return mount, session.backend(mount), name.strip("/")


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


# ---- deployments ----------------------------------------------------------------------------

#: what a mutating verb waits for with --wait
WAIT_FOR = {
    "deploy": "deployed",
    "scale": "deployed",
    "restart": "deployed",
    "rollback": "deployed",
    "start": "deployed",
    "resume": "deployed",
    "stop": "stopped",
    "rm": "removed",
}


def load_specs(
    path: str,
    fmt: str | None = None,
    bind: dict[str, str] | None = None,
    job_key: str | None = None,
    stdin: Any = None,
) -> Any:
    """A spec file (or ``-``: ``stdin``) as a LoadedSpec with services; SpecError (USAGE)
    names file, line and field. ``bind``/``job_key``: Aurora's ``--bind`` and job key."""
    from ..specs import load_file

    loaded = load_file(path, fmt=fmt, bind=bind, job_key=job_key, stdin=stdin)
    if loaded.jobs:
        names = ", ".join(j.name for j in loaded.jobs)
        raise UsageError(f"{path}: holds batch jobs ({names}); deploy them with `run -f`")
    if not loaded.services and not loaded.groups:
        raise UsageError(f"{path}: no service or group in this file")
    return loaded


def deploy(
    session: Session,
    on: str | None,
    services: list[Any],
    groups: list[Any],
    *,
    force: bool = False,
    dry_run: bool = False,
    rollback_on_failure: bool = False,
) -> tuple[Mount, Backend, list[Any]]:
    """Send the specs to the mount's backend (a dry run only plans)."""
    from .launch import launch_mount

    mount = launch_mount(session, on)
    backend = session.backend(mount)
    require(backend, Capability.SERVICES, "svc deploy")
    require(backend, Capability.DEPLOYMENTS, "svc deploy")
    plan = backend.service_call(
        "deploy",
        "-",
        services=services,
        groups=groups,
        force=force,
        dry_run=dry_run,
        rollback_on_failure=rollback_on_failure,
    )
    return mount, backend, plan


def wait_until(
    backend: Backend,
    name: str,
    until: str,
    timeout: float | None,
    progress: Any = None,
) -> Service:
    """Wait for ``name`` to be deployed/healthy/stopped/removed (TimeoutExpired after
    ``timeout``). ``progress(service)`` is called on each poll when given (TTY display)."""
    if progress is None:
        svc: Service = backend.service_call("wait", name, until=until, timeout=timeout)
        return svc
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        try:
            return backend.service_call("wait", name, until=until, timeout=step)
        except TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        try:
            progress(backend.get_service(name))
        except NotFoundError:
            if until != "removed":
                raise


def deployment_outcome(backend: Backend, name: str, deployment_id: str | None) -> Deployment | None:
    """The finished deployment ``deployment_id`` of ``name`` (None when unknown)."""
    if deployment_id is None:
        return None
    for dep in backend.service_call("deployments", name):
        if dep.id == deployment_id:
            return dep
    return None


def check_outcome(dep: Deployment | None) -> None:
    """Raise DeploymentFailed unless the deployment succeeded."""
    if dep is None or dep.state == "SUCCEEDED":
        return
    raise DeploymentFailed(
        f"deployment {dep.id} of {dep.service} {dep.state.lower()}"
        + (f": {dep.message}" if dep.message else "")
    )
