"""The backend plugin API: the only module a plugin author must read.

A backend connects dshell to one kind of cluster (the embedded engine, Slurm, Mesos, Ray…).
It is a subclass of :class:`Backend`, registered as an entry point in the group
``dshell.backends``::

    [project.entry-points."dshell.backends"]
    slurm = "dshell_slurm.backend:SlurmBackend"

dshell lists entry-point names without importing them; the class is imported only when a mount
of its type is used. Import heavy SDKs inside methods, never at module top.

Capabilities are *data*: a backend declares the set it supports in ``capabilities`` and the
core checks it before calling, so a user gets "backend 'slurm' does not support health
checks" with the UNSUPPORTED exit code instead of a traceback. A method for a capability a
backend does not declare is never called.

Methods are synchronous (the CLI never imports asyncio); the core runs several mounts
concurrently in threads, so an instance must tolerate calls from a worker thread, one at a
time. Raise the errors of :mod:`dshell.errors` (``NotFoundError``, ``UnreachableError``,
``BackendError``, ``UsageError``…), mapping the library's own exceptions at the edge.

Example::

    class EchoBackend(Backend):
        '''A toy backend with one agent and no tasks.'''

        name = "echo"
        capabilities = frozenset({Capability.TASKS, Capability.AGENTS})

        def list_tasks(self, query):
            return []

        def get_task(self, task_id):
            raise NotFoundError(f"no task {task_id!r}")

        def list_agents(self):
            return [Agent(id="a1", hostname="localhost")]

Early listings (optional). A backend whose listing is one slow external command (Slurm's
listing ``squeue``) may start it while dshell is still starting: the scripted ``ps`` fast path
(:mod:`dshell.fastpath`) reads the mount table (a plan saved by :mod:`dshell.prestart`), and
for each mount it lists calls ``prefetch_listing(source, options)`` from the top-level package
of the backend's class (its ``__init__``, imported without the backend module: keep both light,
without typing, pathlib or subprocess, which cost ~10 ms each on an interpreter that has not
loaded them). The hook returns a
:class:`Prefetched` handle, or None when it cannot or need not start anything; it must not
raise. The session later hands the handle to the mount's backend instance with
:meth:`Backend.adopt_listing`; the hook saw the row as read quickly, before the table was
validated, so the backend uses the handle only if it is exactly the command it would have run
itself, and closes it otherwise.

The contract test suite in :mod:`dshell.testing.contract` checks a backend against this API;
every backend's tests reuse it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from .errors import UnsupportedError

if TYPE_CHECKING:
    from .model import (
        Agent,
        Event,
        FileEntry,
        Job,
        OutputChunk,
        RunSpec,
        Service,
        Task,
        TaskStats,
    )


class Capability(StrEnum):
    """What a backend can do. The value is the name users see in UNSUPPORTED errors."""

    TASKS = "task listing"
    RUN = "launching tasks"
    KILL = "killing tasks"
    SIGNAL = "sending signals to tasks"
    ATTACH = "attached runs (streaming a task's output and status)"
    EXEC = "exec into a running task"
    TTY = "interactive terminals (-it)"
    FILES = "sandbox files (ls/cat)"
    FOLLOW = "following output (tail -f)"
    STATS = "resource usage (top)"
    AGENTS = "node listing"
    EVENTS = "event streams"
    SERVICES = "services"
    HEALTH_CHECKS = "health checks"
    DEPLOYMENTS = "rolling deployments"
    VOLUMES = "persistent volumes"
    DRAIN = "draining nodes"
    MAINTENANCE = "maintenance windows"
    ATTRIBUTES = "changing node attributes"
    QUOTA = "quotas"
    RESERVATIONS = "reservations"
    PREEMPTION = "preemption tiers and priorities"
    JOBS = "batch jobs and schedules"
    FRAMEWORKS = "nested frameworks"
    IDEMPOTENCY = "idempotency keys"
    DEPENDENCIES = "task dependencies (run --after)"
    BROWSE = "a tree of its own under the mount (ls/cat of any path)"


class Mount(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One row of the mount table: what is mounted where, with which options."""

    target: str  # absolute namespace path, e.g. "/local"
    type: str  # backend name (entry-point name)
    source: str = ""  # e.g. "localhost", "ssh://user@login:22", "zk://h:2181/aurora"
    options: dict[str, str] = {}


class TaskQuery(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Filters for a task listing. Backends may filter server-side; the core re-checks."""

    all: bool = False  # include finished tasks
    states: list[str] = []
    selector: dict[str, str] = {}  # label equality
    service: str | None = None
    limit: int | None = None


class Availability(msgspec.Struct, omit_defaults=True):
    """Whether a backend can work on this machine (e.g. the Slurm client commands exist)."""

    available: bool
    reason: str | None = None


class ExecHandle(ABC):
    """A running ``exec``: its output as chunks, then its status."""

    @abstractmethod
    def chunks(self) -> Iterator[OutputChunk]:
        """Yield output until the command ends."""

    @abstractmethod
    def status(self) -> int:
        """Shell-style status (exit code or 128+signal) once ``chunks`` is exhausted."""

    def write_stdin(self, data: bytes) -> None:  # noqa: B027 - optional
        """Send bytes to the command's stdin (interactive exec)."""

    def resize(self, rows: int, cols: int) -> None:  # noqa: B027 - optional
        """Resize the command's terminal (``-it``)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the connection."""


class Prefetched(Protocol):
    """What a package's ``prefetch_listing`` hook returns: a started listing, closable."""

    def close(self) -> None:
        """Stop it and release what it holds (idempotent)."""


class Backend(ABC):
    """A cluster kind. One instance serves one mount.

    REQUIRED: ``name``, ``capabilities``, ``list_tasks``, ``get_task``, ``list_agents``.
    Everything else is needed only for the capabilities the backend declares.
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Mount options this backend understands (``mount -o``), with a one-line description.
    options: ClassVar[dict[str, str]] = {}

    def __init__(self, mount: Mount) -> None:
        self.mount = mount

    # ---- discovery ---------------------------------------------------------------------------

    @classmethod
    def availability(cls) -> Availability:
        """Whether this backend can work here; cheap (no network). Default: available."""
        return Availability(True)

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections; called when the session ends or the mount is removed."""

    def validate_mount(self) -> None:  # noqa: B027 - optional
        """Check the mount's source and options at ``mount`` time; raise UsageError if bad."""

    def adopt_listing(self, started: Prefetched) -> None:
        """Take a listing this backend's package hook started early (see "Early listings"
        above). The default has no use for one and closes it."""
        started.close()

    # ---- required listing --------------------------------------------------------------------

    @abstractmethod
    def list_tasks(self, query: TaskQuery) -> list[Task]:
        """Tasks matching the query (active only unless ``query.all``)."""

    @abstractmethod
    def get_task(self, task_id: str) -> Task:
        """One task by its full id, with its state history. NotFoundError if unknown."""

    @abstractmethod
    def list_agents(self) -> list[Agent]:
        """The cluster's nodes with total/reserved/allocated/used resources."""

    # ---- tasks (RUN, KILL, SIGNAL, ATTACH, EXEC, FILES, FOLLOW, STATS, EVENTS) --------------

    def submit(self, spec: RunSpec) -> list[Task]:
        """Launch ``spec.instances`` tasks; return them (usually STAGING). Capability RUN."""
        raise UnsupportedError(self.name, Capability.RUN)

    def kill(self, task_id: str, *, signal: int | None = None, grace: float | None = None) -> Task:
        """KILL: SIGTERM, grace, SIGKILL to the whole task. SIGNAL: send just ``signal``."""
        raise UnsupportedError(self.name, Capability.KILL)

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        """Block until the task is terminal (TimeoutExpired after ``timeout``). ATTACH."""
        raise UnsupportedError(self.name, Capability.ATTACH)

    def read_output(
        self, task_id: str, *, stream: str = "stdout", offset: int = 0, follow: bool = False
    ) -> Iterator[OutputChunk]:
        """A task's output from byte ``offset``; with ``follow``, until the task ends. FILES."""
        raise UnsupportedError(self.name, Capability.FILES)

    def attach(self, task_id: str) -> Iterator[OutputChunk]:
        """Both output streams of a task, live, until it ends (attached ``run``). ATTACH."""
        raise UnsupportedError(self.name, Capability.ATTACH)

    def list_files(self, task_id: str, path: str) -> list[FileEntry]:
        """Entries of a directory inside a task's sandbox (``path`` relative). FILES."""
        raise UnsupportedError(self.name, Capability.FILES)

    def read_file(
        self, task_id: str, path: str, *, offset: int = 0, follow: bool = False
    ) -> Iterator[bytes]:
        """A file inside a task's sandbox; never a path outside it. FILES / FOLLOW."""
        raise UnsupportedError(self.name, Capability.FILES)

    def exec(
        self,
        task_id: str,
        command: list[str],
        *,
        tty: bool = False,
        env: dict[str, str] | None = None,
    ) -> ExecHandle:
        """Run a command in a running task's sandbox, environment and cgroups. EXEC."""
        raise UnsupportedError(self.name, Capability.EXEC)

    def stats(self) -> list[TaskStats]:
        """One usage sample per active task. STATS."""
        raise UnsupportedError(self.name, Capability.STATS)

    def events(self, *, since: int | None = None, follow: bool = True) -> Iterator[Event]:
        """State changes with sequence numbers, from ``since`` on. EVENTS."""
        raise UnsupportedError(self.name, Capability.EVENTS)

    # ---- services (SERVICES, DEPLOYMENTS, HEALTH_CHECKS) ------------------------------------

    def list_services(self) -> list[Service]:
        raise UnsupportedError(self.name, Capability.SERVICES)

    def get_service(self, name: str) -> Service:
        raise UnsupportedError(self.name, Capability.SERVICES)

    def service_call(self, verb: str, name: str, **params: Any) -> Any:
        """Service verbs beyond listing (deploy, scale, restart, stop, rm, rollback…).

        One entry point keeps the ABC small while the services API grows; the core checks
        SERVICES (and DEPLOYMENTS for rolling verbs) before calling.
        """
        raise UnsupportedError(self.name, Capability.SERVICES)

    # ---- batch jobs (JOBS) -------------------------------------------------------------------

    def list_jobs(self) -> list[Job]:
        """Batch jobs with their state, schedules and counts. JOBS."""
        raise UnsupportedError(self.name, Capability.JOBS)

    def job_call(self, verb: str, name: str, **params: Any) -> Any:
        """Job verbs beyond listing: create (``jobs=[BatchJobSpec…]``, ``replace``), show,
        run, kill (``run=N``), rm, history (``limit``), pause, resume. JOBS."""
        raise UnsupportedError(self.name, Capability.JOBS)

    # ---- a tree of its own (BROWSE) --------------------------------------------------------

    def browse(self, path: str) -> list[FileEntry]:
        """Entries of the directory ``path`` below the mount (``""``: the mount itself). BROWSE.

        A backend that declares BROWSE (a ZooKeeper tree, an object store) serves the whole
        namespace below its mount: ``ls``, ``cd`` and ``cat`` there call ``browse`` and
        ``read_path`` instead of showing tasks/agents/svc/vol/fw. NotFoundError if missing.
        """
        raise UnsupportedError(self.name, Capability.BROWSE)

    def read_path(self, path: str, *, offset: int = 0) -> Iterator[bytes]:
        """The content of the file ``path`` below the mount, from byte ``offset``. BROWSE."""
        raise UnsupportedError(self.name, Capability.BROWSE)

    # ---- admin (DRAIN, QUOTA, RESERVATIONS, VOLUMES, JOBS, FRAMEWORKS) ---------------------

    def admin_call(self, verb: str, **params: Any) -> Any:
        """Operator verbs (drain, nodes up, quota, reserve, vol, job, fw…)."""
        raise UnsupportedError(self.name, Capability.DRAIN)


def seconds_option(value: str, what: str) -> float:
    """A mount option that is a positive number of seconds (``-o poll=0.5``); UsageError
    naming the option otherwise. For backends' ``__init__``/``validate_mount``."""
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0 or number == float("inf"):
        from .errors import UsageError

        raise UsageError(f"mount -o {what}={value!r}: expected a positive number of seconds")
    return number


def require(backend: Backend, capability: Capability, verb: str | None = None) -> None:
    """Raise UnsupportedError unless ``backend`` declares ``capability``."""
    if capability not in backend.capabilities:
        raise UnsupportedError(backend.name, capability.value, verb)
