"""Nested frameworks: what a framework *kind* (``fw launch KIND``) must provide.

A kind turns a launch request into services deployed on a host cluster (any mounted backend
with the SERVICES capability), and tells how to mount the running framework: which backend
serves it and with which source and options. Kinds are discovered like backends, by name,
from the entry-point group ``dshell.frameworks`` (``engine`` is the nested dshell engine,
``ray`` a Ray cluster), so a third party can add one.

The mount table records the framework (``fw=NAME``, ``host=PATH``), never an address: the
address is derived again from the host's service endpoints each time the mount is opened, so
a framework relaunched on other ports (or another agent) is found again.

On a host without services but with RUN (Slurm), a kind that offers :class:`JobHosted` runs
as plain tasks of the host instead, which announce their endpoints on their stdout
(:mod:`dshell.core.fwjobs`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import msgspec

from .model import Endpoint, Resources

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .backend import Backend, Mount
    from .model import RunSpec, Service, Task
    from .session import Session
    from .specs.model import ServiceSpec

GROUP = "dshell.frameworks"


class LaunchRequest(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``fw launch KIND --name NAME --on HOST -o OPTIONS --cpus … --mem …``."""

    name: str
    kind: str
    host: str  # the namespace path of the host cluster's mount, e.g. "/local"
    options: dict[str, str] = {}
    resources: Resources = msgspec.field(default_factory=Resources)


class FrameworkKind(ABC):
    """One kind of framework. Instances are stateless; every call gets the request."""

    name: ClassVar[str]  # "engine", "ray"
    mount_type: ClassVar[str]  # the backend (entry point in ``dshell.backends``) serving it
    requires: ClassVar[str] = ""  # what to install when it is missing, e.g. "dshell[ray]"

    def check(self, host: Backend, req: LaunchRequest) -> None:  # noqa: B027 - optional
        """Refuse a launch this host cannot carry (raise a DshellError), before anything runs."""

    @abstractmethod
    def services(
        self, host: Backend, req: LaunchRequest, endpoints: Mapping[str, list[Endpoint]]
    ) -> list[ServiceSpec]:
        """The services still to deploy on the host, given the endpoints of those already
        deployed and healthy (keyed by service name). Called first with ``{}``, then again
        after each batch is healthy; an empty list means the framework is complete."""

    @abstractmethod
    def mount_source(
        self, host: Backend, req: LaunchRequest, endpoints: Mapping[str, list[Endpoint]]
    ) -> tuple[str, dict[str, str]]:
        """The source and options the framework's backend is opened with, from the current
        endpoints of its services on the host."""

    def remove(self, host: Backend, req: LaunchRequest) -> None:  # noqa: B027 - optional
        """Free what the framework kept on the host beside its services (its state), once
        ``fw rm`` has removed the services."""

    #: ``module:Class`` of the kind's :class:`JobHosted`, imported only when a launch on a host
    #: without services needs it (what the default :meth:`job_hosted` returns; "": none)
    job_form: ClassVar[str] = ""

    def job_hosted(self, host: Backend) -> JobHosted:
        """How this kind runs as plain tasks on ``host``, a cluster without services (Slurm):
        see :class:`JobHosted`. By default: an instance of :attr:`job_form`, if the kind
        names one; else the kind runs only as services (UNSUPPORTED)."""
        from .errors import UnsupportedError
        from .plugins import import_class

        if not self.job_form:
            raise UnsupportedError(
                host.name, "nested frameworks on a cluster without services", "fw launch"
            )
        hosted: JobHosted = import_class(
            self.job_form,
            JobHosted,
            f"framework kind {self.name!r}: its job form {self.job_form}",
            f"framework kind {self.name!r}: {self.job_form} is not a JobHosted",
        )()
        return hosted


class JobHosted(ABC):
    """A kind's way to run as plain tasks of a host that has no services (Slurm), where
    ``fw launch`` submits its tasks stage by stage (:mod:`dshell.core.fwjobs`).

    Such a host allocates no ports: each task chooses its own free ports on its node's
    address when it starts and *announces* them, one :data:`ANNOUNCE` line per port on its
    stdout (:func:`announce_line`). The core reads them with ``Backend.read_output``; a
    later line for the same name replaces an earlier one (a task that restarted its
    processes on new ports announces them again). A task is ready once it is running and has
    announced the endpoint named by its :data:`READY_LABEL` (``"NAME /path"``), and an HTTP
    GET of that path on it answers 2xx from where the shell runs (without the label: once
    it is running and has announced anything).
    """

    def check(self, host: Backend, req: LaunchRequest) -> None:  # noqa: B027 - optional
        """Refuse a launch this host cannot carry (raise a DshellError), before anything runs."""

    @abstractmethod
    def jobs(
        self, host: Backend, req: LaunchRequest, announced: Mapping[str, list[Endpoint]]
    ) -> list[RunSpec]:
        """The tasks still to submit (each with a ``name``, unique in the framework), given
        the endpoints announced by those already ready, keyed by task name. Called first with
        ``{}``, then after each stage is ready; an empty list means the framework is up."""

    @abstractmethod
    def mount_source(
        self,
        host: Backend,
        req: LaunchRequest,
        announced: Mapping[str, list[Endpoint]],
        tasks: Sequence[Task],
    ) -> tuple[str, dict[str, str]]:
        """The source and options the framework's backend is opened with, from the endpoints
        its running tasks announce now (``tasks``: the framework's active tasks)."""

    def remove(self, host: Backend, req: LaunchRequest) -> None:  # noqa: B027 - optional
        """Free what the framework kept on the host (its files), once its tasks ended."""


# ---- the framework's record on its host ------------------------------------------------------

#: labels on every service of a framework: its name, its kind, and the whole request (JSON)
LABEL = "dshell.fw"
KIND_LABEL = "dshell.fw.kind"
REQUEST_LABEL = "dshell.fw.request"
#: the mount options of a framework's mount row (nothing else: never an address)
MOUNT_KEYS = ("fw", "host", "kind")
MAX_BATCHES = 16  # services() rounds before a kind is deemed stuck
#: on a task of a job-hosted framework: ``"ENDPOINT /path"``, its readiness probe
READY_LABEL = "dshell.fw.ready"
#: the first word of an endpoint announcement on a job-hosted framework task's stdout
ANNOUNCE = "DSHELL_ENDPOINT"


def service_name(name: str) -> str:
    """The host service of framework ``name`` (a kind names further ones ``fw-NAME-…``)."""
    return f"fw-{name}"


def request_labels(req: LaunchRequest) -> dict[str, str]:
    return {
        LABEL: req.name,
        KIND_LABEL: req.kind,
        REQUEST_LABEL: msgspec.json.encode(req).decode(),
    }


def request_of(labels: Mapping[str, str]) -> LaunchRequest | None:
    """The launch request recorded on a framework's service (None: not a framework's)."""
    text = labels.get(REQUEST_LABEL)
    if not text:
        return None
    try:
        return msgspec.json.decode(text, type=LaunchRequest)
    except msgspec.DecodeError:
        return None


def announce_line(name: str, host: str, port: int) -> str:
    """``DSHELL_ENDPOINT NAME HOST:PORT`` (an IPv6 host in brackets), without the newline."""
    where = f"[{host}]" if ":" in host else host
    return f"{ANNOUNCE} {name} {where}:{port}"


def parse_announcements(text: str) -> dict[str, tuple[str, int]]:
    """Endpoint name -> (host, port) from a task's stdout; the last line for a name wins,
    and lines that are not well-formed announcements are ignored (it is a task's output)."""
    found: dict[str, tuple[str, int]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) != 3 or words[0] != ANNOUNCE:
            continue
        host, sep, port = words[2].rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            continue
        found[words[1]] = (host, int(port))
    return found


# ---- kinds ------------------------------------------------------------------------------------


def kind_targets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Kind name -> ``module:Class``: the entry points, then ``DSHELL_FRAMEWORKS="name=module:
    Class,…"`` (for plugin authors and tests; it never shadows an installed kind)."""
    from .plugins import cached_entry_points, env_targets

    targets = {name: target for name, target, _dist in cached_entry_points(GROUP)}
    for name, target in env_targets("DSHELL_FRAMEWORKS", environ):
        targets.setdefault(name, target)
    return targets


def load_kind(name: str, environ: Mapping[str, str] | None = None) -> FrameworkKind:
    """The kind ``name``, imported now; NotFoundError naming the installed ones, PluginError
    when its plugin is broken (a missing optional dependency names what to install)."""
    from .errors import NotFoundError
    from .plugins import import_class

    targets = kind_targets(environ)
    target = targets.get(name)
    if target is None:
        known = ", ".join(sorted(targets)) or "none"
        raise NotFoundError(f"unknown framework kind {name!r} (installed: {known})")
    kind: FrameworkKind = import_class(
        target,
        FrameworkKind,
        f"framework kind {name!r} ({target})",
        f"framework kind {name!r}: {target} is not a FrameworkKind",
    )()
    return kind


# ---- opening a framework's mount ---------------------------------------------------------------


def framework_services(host: Backend, name: str) -> list[Service]:
    """The services of framework ``name`` on ``host`` (the main one first)."""
    main = service_name(name)
    found = [s for s in host.list_services() if s.labels.get(LABEL) == name]
    return sorted(found, key=lambda s: (s.name != main, s.name))


def endpoints_of(host: Backend, services: list[Service]) -> dict[str, list[Endpoint]]:
    return {s.name: list(host.service_call("endpoints", s.name)) for s in services}


def resolve(session: Session, mount: Mount) -> Mount:
    """The mount a framework's row (``fw=NAME,host=PATH,kind=KIND``) is opened as: its kind's
    backend with the source and options derived from the host's services as they are now.

    Cached per session until the mount table changes; a host that is itself a framework is
    resolved first (so a framework inside a framework resolves level by level)."""
    from .backend import Mount as MountRow
    from .errors import NotFoundError
    from .namespace import resolve as resolve_path

    cached = session.fw_mounts.get(mount.target)
    if cached is not None and cached[0] == mount:
        return cached[1]
    name, host_path = mount.options.get("fw", ""), mount.options.get("host", "")
    host_mount = resolve_path(session.mounts(), host_path).mount
    if host_mount is None or host_mount.target != host_path:
        raise NotFoundError(f"{mount.target}: its host {host_path!r} is not mounted")
    # A private instance of the host's backend: the shared one may be serving another mount's
    # thread right now (``ps /`` fans out), and a backend takes one call at a time.
    host_row = resolve(session, host_mount) if "fw" in host_mount.options else host_mount
    host = session.registry.load(host_row.type)(host_row)
    try:
        from .backend import Capability

        if Capability.SERVICES not in host.capabilities:  # job-hosted (Slurm): its tasks
            from .core.fwjobs import mount_source

            kind_type, source, options = mount_source(session, host, name, mount.target)
            opened = MountRow(target=mount.target, type=kind_type, source=source, options=options)
            session.fw_mounts[mount.target] = (mount, opened)
            return opened
        services = framework_services(host, name)
        req = request_of(services[0].labels) if services else None
        if req is None:
            raise NotFoundError(
                f"{mount.target}: framework {name!r} has no service on {host_path} "
                f"(`fw rm {mount.target}` forgets it)"
            )
        kind = load_kind(req.kind, session.env.environ)
        source, options = kind.mount_source(host, req, endpoints_of(host, services))
    finally:
        host.close()
    opened = MountRow(target=mount.target, type=kind.mount_type, source=source, options=options)
    session.fw_mounts[mount.target] = (mount, opened)
    return opened
