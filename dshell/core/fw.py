"""fw launch / ls / rm: nested frameworks, run as services of a host cluster and mounted.

``launch`` deploys the kind's services batch by batch on the host (each batch healthy before
the kind is asked for the next), then mounts the framework at ``HOST/fw/NAME``. The mount row
says only which framework it is (``fw=NAME,host=PATH,kind=KIND``); its address is derived from
the host's services each time it is opened (:func:`dshell.frameworks.resolve`). The launch
request is recorded as labels on the services, so ``ls`` and a reopening rebuild it from the
host alone. A launch that fails removes what it deployed: nothing is left half-launched.

On a host without services but with RUN (Slurm), ``launch``/``ls``/``rm`` hand over to
:mod:`dshell.core.fwjobs`: the framework runs as plain tasks of the host, with the same labels.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..backend import Capability, Mount, require
from ..errors import ConflictError, DshellError, NotFoundError, UsageError
from ..frameworks import (
    LABEL,
    MAX_BATCHES,
    LaunchRequest,
    framework_services,
    load_kind,
    request_labels,
    request_of,
    service_name,
)
from ..model import Framework, Resources
from .fanout import Fanned, fan_out, target_mounts

if TYPE_CHECKING:
    from ..backend import Backend
    from ..model import Endpoint, Service
    from ..session import Session

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
DEFAULT_TIMEOUT = 300.0


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"--name {name!r}: use 1-32 lowercase letters, digits and '-' "
            "(not first or last), e.g. team-a"
        )
    return name


def launch(
    session: Session,
    kind_name: str,
    name: str,
    on: str | None,
    options: dict[str, str],
    resources: Resources,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Framework:
    """Deploy the framework on the host at ``on`` (default: the current mount), wait until it
    is healthy, and mount it at ``HOST/fw/NAME``."""
    from .launch import launch_mount

    check_name(name)
    kind = load_kind(kind_name, session.env.environ)
    host_mount = launch_mount(session, on)
    host = session.backend(host_mount)
    target = f"{host_mount.target}/fw/{name}"
    if any(m.target == target for m in session.mounts()):
        raise ConflictError(f"{target}: already mounted (`fw rm {name}` first)")
    if Capability.SERVICES not in host.capabilities and Capability.RUN in host.capabilities:
        from . import fwjobs  # a host without services (Slurm): the framework runs as tasks

        req = LaunchRequest(
            name=name, kind=kind_name, host=host_mount.target, options=options, resources=resources
        )
        return fwjobs.launch(session, kind, host, host_mount, req, timeout)
    require(host, Capability.SERVICES, "fw launch")
    require(host, Capability.DEPLOYMENTS, "fw launch")
    if framework_services(host, name):
        raise ConflictError(
            f"framework {name!r} already runs on {host_mount.target} "
            f"(service {service_name(name)}; `fw rm {target}` first)"
        )
    req = LaunchRequest(
        name=name, kind=kind_name, host=host_mount.target, options=options, resources=resources
    )
    kind.check(host, req)
    deployed: list[str] = []
    try:
        _deploy_all(host, kind, req, deployed, timeout)
        row = Mount(
            target=target,
            type=kind.mount_type,
            options={"fw": name, "host": host_mount.target, "kind": kind_name},
        )
        session.table.add(row)
    except BaseException:
        _remove_services(host, deployed, timeout=60.0)
        raise
    session.invalidate_mounts()
    return Framework(
        name=name,
        kind=kind_name,
        mount=target,
        host=host_mount.target,
        state="RUNNING",
        service=service_name(name),
        resources=resources,
    )


def _deploy_all(
    host: Backend, kind: Any, req: LaunchRequest, deployed: list[str], timeout: float | None
) -> None:
    """Ask the kind for batches until it has none left; each batch healthy before the next."""
    from .services import check_outcome, deployment_outcome, wait_until

    endpoints: dict[str, list[Endpoint]] = {}
    for _ in range(MAX_BATCHES):
        batch = kind.services(host, req, endpoints)
        if not batch:
            return
        for spec in batch:
            spec.labels = {**spec.labels, **request_labels(req)}
        _check_room(host, req, batch)
        plan = host.service_call("deploy", "-", services=batch, groups=[])
        deployed.extend(s.name for s in batch)
        deployments = {item.service: item.deployment for item in plan}
        for spec in batch:
            wait_until(host, spec.name, "deployed", timeout)
            check_outcome(deployment_outcome(host, spec.name, deployments.get(spec.name)))
        endpoints.update({s.name: list(host.service_call("endpoints", s.name)) for s in batch})
    raise UsageError(f"framework kind {req.kind!r} never finished (over {MAX_BATCHES} batches)")


def _check_room(host: Backend, req: LaunchRequest, batch: list[Any]) -> None:
    """Refuse a batch the host has no room for now (a dry run places it), rather than wait
    for resources until the timeout."""
    for item in host.service_call("deploy", "-", services=batch, groups=[], dry_run=True):
        if None in item.placement:
            raise ConflictError(
                f"no room on {req.host} for framework {req.name!r} ({item.service}): "
                f"{item.message or 'not enough free resources'}"
            )


def _remove_services(host: Backend, names: list[str], timeout: float | None) -> None:
    """Remove services and wait until they are gone (their whole process trees with them)."""
    from .services import wait_until

    for svc in names:
        try:
            host.service_call("rm", svc)
        except NotFoundError:
            continue
    for svc in names:
        try:
            wait_until(host, svc, "removed", timeout)
        except NotFoundError:
            continue


# ---- listing -----------------------------------------------------------------------------


def _state(svc: Service) -> str:
    """RUNNING when every instance is healthy (or running, without checks); else the
    service's own state (DEPLOYING, WAITING…) or RECOVERING while an instance is replaced."""
    want = max(svc.instances, 1)
    ok = svc.healthy if svc.health_checks else svc.running
    if svc.state == "RUNNING" and ok >= want:
        return "RUNNING"
    return svc.state if svc.state != "RUNNING" else "RECOVERING"


def frameworks_on(host: Backend, host_target: str) -> list[Framework]:
    """The frameworks whose services run on ``host``, one row each (its services summed)."""
    found: dict[str, Framework] = {}
    for svc in sorted(host.list_services(), key=lambda s: s.name):
        name = svc.labels.get(LABEL)
        if not name:
            continue
        req = request_of(svc.labels)
        fw = found.get(name)
        res = svc.resources
        total = Resources(res.cpus, res.mem, res.disk, res.ports, res.gpus)
        for _ in range(max(svc.instances, 1) - 1):
            total = total + res
        if fw is None:
            found[name] = Framework(
                name=name,
                kind=req.kind if req else svc.labels.get("dshell.fw.kind", "?"),
                mount=f"{host_target}/fw/{name}",
                host=host_target,
                state=_state(svc),
                service=svc.name,
                resources=total,
            )
        else:
            fw.resources = fw.resources + total
            if _state(svc) != "RUNNING":
                fw.state = _state(svc)
    return list(found.values())


def ls(session: Session, path: str | None) -> Fanned[Framework]:
    """Frameworks on every mount under ``path``; a mounted framework whose services are gone
    from its (answering) host is listed as LOST."""
    mounts = target_mounts(session, path)

    def call(backend: Backend, mount: Mount) -> list[Framework]:
        if Capability.SERVICES in backend.capabilities:
            return frameworks_on(backend, mount.target)
        if {Capability.RUN, Capability.TASKS} <= backend.capabilities and "fw" not in mount.options:
            from .fwjobs import frameworks_on as jobs_on  # hosts without services (Slurm)

            return jobs_on(backend, mount.target)
        return []

    result = fan_out(session, mounts, call)
    for fw in result.rows:
        fw.mount, fw.host = f"{fw.host}/fw/{fw.name}", fw.host  # fan_out set mount = host
    listed = {fw.mount for fw in result.rows}
    failed = {target for target, _ in result.errors}
    hosts = {m.target for m in mounts}
    for row in session.mounts():
        opts = row.options
        if "fw" not in opts or row.target in listed:
            continue
        if opts.get("host") in hosts and opts.get("host") not in failed:
            result.rows.append(
                Framework(
                    name=opts["fw"],
                    kind=opts.get("kind", "?"),
                    mount=row.target,
                    host=opts.get("host", ""),
                    state="LOST",
                    service=service_name(opts["fw"]),
                )
            )
    result.rows.sort(key=lambda f: f.mount)
    return result


# ---- removal -----------------------------------------------------------------------------


def umount_all(session: Session, paths: list[str]) -> None:
    """Unmount ``paths`` (deepest first: whatever ran in one goes with its process tree)."""
    from .mounts import umount

    for path in paths:
        try:
            umount(session, path)
        except DshellError:
            continue


def locate(session: Session, ref: str) -> tuple[str, str, str]:
    """(mount target, framework name, host path) of ``ref``: a path (``/local/fw/team-a``)
    or a name (its only framework mount; AMBIGUOUS when several hosts have one)."""
    from ..errors import AmbiguousError

    rows = [m for m in session.mounts() if "fw" in m.options]
    if "/" in ref:
        path = session.abspath(ref)
        for m in rows:
            if m.target == path:
                return m.target, m.options["fw"], m.options.get("host", "")
        parent, _, name = path.rpartition("/fw/")
        if name and "/" not in name and parent:
            return path, name, parent  # not mounted (any more): its services may still run
        raise NotFoundError(f"{path}: not a framework (expected HOST/fw/NAME)")
    check_name(ref)
    hits = [m for m in rows if m.options["fw"] == ref]
    if len(hits) > 1:
        raise AmbiguousError(
            f"framework {ref!r} is mounted on several hosts: give its path",
            [m.target for m in hits],
        )
    if not hits:
        raise NotFoundError(f"no framework {ref!r} is mounted (see `fw ls`)")
    m = hits[0]
    return m.target, ref, m.options.get("host", "")


def rm(session: Session, ref: str, timeout: float | None = 120.0) -> Framework:
    """Unmount the framework (and any mounted inside it), then remove its services on the
    host, which stops their whole process trees, and what the kind kept on the host."""
    from ..namespace import resolve as resolve_path

    target, name, host_path = locate(session, ref)
    host_mount = resolve_path(session.mounts(), host_path).mount
    if host_mount is None or host_mount.target != host_path:
        raise NotFoundError(f"{target}: its host {host_path!r} is not mounted")
    host = session.backend(host_mount)
    below = sorted(
        (
            m.target
            for m in session.mounts()
            if m.target == target or m.target.startswith(target + "/")
        ),
        key=len,
        reverse=True,
    )
    if Capability.SERVICES not in host.capabilities and Capability.RUN in host.capabilities:
        from . import fwjobs  # a host without services (Slurm): the framework runs as tasks

        return fwjobs.rm(session, host, target, name, host_path, below, timeout)
    require(host, Capability.SERVICES, "fw rm")
    services = framework_services(host, name)
    req = request_of(services[0].labels) if services else None
    if not services and not below:
        raise NotFoundError(f"no framework {name!r} on {host_path}")
    umount_all(session, below)
    _remove_services(host, [s.name for s in services], timeout)
    if req is not None:
        load_kind(req.kind, session.env.environ).remove(host, req)
    return Framework(
        name=name,
        kind=req.kind if req else "?",
        mount=target,
        host=host_path,
        state="REMOVED",
        service=service_name(name),
        resources=req.resources if req else Resources(),
    )
