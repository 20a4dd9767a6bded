"""The normalized model every backend maps onto (msgspec Structs).

JSON output is this model, identical across backends: full ids, RFC 3339 UTC times, and a
schema marker on every object (``apiVersion`` + ``kind``). Raw backend payloads never appear
here; a backend may keep them in ``raw`` for ``--raw``.

Field names follow the Mesos operator API where one exists (``agent_id``, ``framework_id``,
``role``, resources ``cpus``/``mem``/``disk``/``ports``) so that a Mesos backend maps one to one.
Memory and disk are MiB, as in Mesos.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

API_VERSION = "dshell/v1"


class TaskState(StrEnum):
    """Mesos-like task states. Terminal: FINISHED, FAILED, KILLED, LOST, ERROR."""

    STAGING = "STAGING"  # accepted, waiting for resources or to be spawned
    STARTING = "STARTING"  # spawned, not yet confirmed running
    RUNNING = "RUNNING"
    KILLING = "KILLING"
    FINISHED = "FINISHED"  # exited 0
    FAILED = "FAILED"  # exited non-zero, or could not start, or OOM
    KILLED = "KILLED"  # stopped by a kill request
    LOST = "LOST"  # the engine lost track of it (e.g. its host vanished)
    ERROR = "ERROR"  # invalid task: it never ran

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return not self.terminal


TERMINAL_STATES = frozenset(
    {TaskState.FINISHED, TaskState.FAILED, TaskState.KILLED, TaskState.LOST, TaskState.ERROR}
)


class Resources(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A resource vector: cpus (cores), mem and disk (MiB), and a count of ports."""

    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    ports: int = 0
    gpus: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpus + other.cpus,
            self.mem + other.mem,
            self.disk + other.disk,
            self.ports + other.ports,
            self.gpus + other.gpus,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpus - other.cpus,
            self.mem - other.mem,
            self.disk - other.disk,
            self.ports - other.ports,
            self.gpus - other.gpus,
        )

    def fits_in(self, other: Resources) -> bool:
        eps = 1e-9
        return (
            self.cpus <= other.cpus + eps
            and self.mem <= other.mem + eps
            and self.disk <= other.disk + eps
            and self.ports <= other.ports
            and self.gpus <= other.gpus + eps
        )


class StateChange(msgspec.Struct, omit_defaults=True):
    """One entry of an object's state history."""

    state: str
    at: str  # RFC 3339 UTC
    reason: str | None = None
    message: str | None = None


class PortMapping(msgspec.Struct, omit_defaults=True):
    name: str | None
    port: int
    protocol: str = "tcp"


class Task(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A task: one process tree running on one agent of one cluster."""

    id: str
    name: str
    state: TaskState
    mount: str = ""  # the namespace path of the cluster it came from, filled in by the core
    backend: str = ""
    agent_id: str | None = None
    hostname: str | None = None
    framework_id: str | None = None
    role: str | None = None
    command: list[str] = []
    shell: bool = False
    resources: Resources = msgspec.field(default_factory=Resources)
    ports: list[PortMapping] = []
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    service: str | None = None  # owning service, if any
    instance: int | None = None  # instance index (service instance, array task)
    parent_task: str | None = None  # the task a nested framework runs in
    tier: str | None = None  # preemption tier: preferred | preemptible (None: backend has none)
    priority: int | None = None  # preemption priority, higher wins (None: backend has none)
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None  # machine-readable: REASON_OOM, REASON_KILLED_BY_USER, …
    message: str | None = None  # human-readable detail (pending reason, error text)
    health: str | None = None  # HEALTHY | UNHEALTHY | None (no checks)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    sandbox: str | None = None
    volumes: list[str] = []  # persistent volumes it uses, NAME:PATH[:ro]
    history: list[StateChange] = []
    raw: dict[str, Any] | None = None

    @property
    def status(self) -> int | None:
        """Shell-style status: exit code, or 128+signal."""
        if self.signal:
            return 128 + self.signal
        return self.exit_code


class AgentDrain(msgspec.Struct, omit_defaults=True, kw_only=True):
    """An agent's drain in progress (Mesos DRAIN_AGENT): what still runs there, what cannot
    move and why."""

    started_at: str
    max_grace: float | None = None  # the longest SIGTERM→SIGKILL wait of a task killed
    tasks: int = 0  # tasks still on the agent
    blocked: list[str] = []  # service instances that can go nowhere else, with the reason
    window: int | None = None  # the maintenance window that started it


class RoleQuota(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A role's quota limits (absent: unlimited), weight, holdings and reservations."""

    role: str
    weight: float = 1.0
    limits: dict[str, float] = {}  # cpus, mem (MiB), disk (MiB)
    allocated: Resources = msgspec.field(default_factory=Resources)
    reserved: Resources = msgspec.field(default_factory=Resources)  # on all agents
    share: float = 0.0  # weighted dominant share (DRF)
    pending: int = 0  # tasks waiting
    mount: str = ""


class MaintenanceWindow(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A scheduled maintenance window of one agent (Mesos: a machine's unavailability)."""

    agent: str
    id: int
    start: str  # RFC 3339
    end: str
    duration: float  # seconds
    state: str  # SCHEDULED | DRAINING (the agent drains ahead of it) | ACTIVE (agent DOWN)
    agent_state: str = "UP"
    mount: str = ""
    hostname: str = ""


class Agent(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A node (Mesos agent, Slurm node, Ray node) with its resources."""

    id: str
    hostname: str
    state: str = "UP"  # UP | DRAINING | DRAINED | DOWN
    mount: str = ""
    backend: str = ""
    total: Resources = msgspec.field(default_factory=Resources)
    reserved: Resources = msgspec.field(default_factory=Resources)
    reservations: dict[str, Resources] = {}  # role -> reserved for it
    allocated: Resources = msgspec.field(default_factory=Resources)
    used: Resources = msgspec.field(default_factory=Resources)
    attributes: dict[str, str] = {}
    port_ranges: list[tuple[int, int]] = []
    tasks: int = 0
    reason: str | None = None
    drain: AgentDrain | None = None
    raw: dict[str, Any] | None = None


class HealthCheck(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Mesos HealthCheck semantics (times in seconds)."""

    protocol: str  # COMMAND | HTTP | HTTPS | TCP
    command: str | None = None
    path: str = "/"
    port_name: str | None = None
    port_index: int | None = None
    port: int | None = None
    delay: float = 15.0
    interval: float = 10.0
    timeout: float = 20.0
    consecutive_failures: int = 3
    grace_period: float = 10.0


class Constraint(msgspec.Struct, omit_defaults=True):
    field: str  # "hostname" or an attribute name
    operator: str  # UNIQUE CLUSTER GROUP_BY MAX_PER LIKE UNLIKE IS
    value: str | None = None


class Deployment(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A change of a service's version or instance count, rolled out step by step."""

    id: str
    service: str
    version: str  # the version being deployed
    state: str  # RUNNING PAUSED SUCCEEDED FAILED ABORTED
    from_version: str | None = None
    cause: str = "deploy"  # deploy | restart | rollback | scale
    step: int = 0  # new instances ready so far
    total_steps: int = 0  # instances the deployment must have ready
    failures: int = 0  # new-version instances that failed during the deployment
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None


class ServiceInstance(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One instance of a service, as ``svc status`` shows it."""

    task_id: str
    instance: int
    state: str
    version: str | None = None
    agent_id: str | None = None
    hostname: str | None = None
    ports: list[PortMapping] = []
    health: str | None = None  # HEALTHY | UNHEALTHY | None (no checks, or not checked yet)
    ready: bool = False  # counts as ready for deployments (running, healthy, readiness passed)
    started_at: str | None = None


class PlanItem(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What a deployment of one service does (the answer of a deploy, and of a dry run)."""

    service: str
    action: str  # create | update | scale | unchanged
    from_version: str | None = None
    to_version: str | None = None
    instances: int = 0
    start: int = 0  # instances to launch
    stop: int = 0  # instances to kill
    deployment: str | None = None
    placement: list[str | None] = []  # agent per new instance (dry run), None = no room
    message: str | None = None
    spec: dict[str, Any] | None = None  # the normalized spec (dry runs)


class Endpoint(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``host:port`` of one named port of one running service instance."""

    service: str
    task_id: str
    instance: int
    port_name: str
    host: str
    port: int
    ready: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class ServiceVersion(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One version of a service's configuration (``svc versions``)."""

    version: str
    created_at: str
    cause: str  # deploy | restart | rollback
    current: bool = False


class Service(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A long-running service (Marathon app, Aurora service job)."""

    name: str
    mount: str = ""
    backend: str = ""
    state: str = "RUNNING"  # RUNNING DEPLOYING SUSPENDED WAITING
    role: str | None = None
    instances: int = 1
    running: int = 0
    healthy: int = 0
    version: str | None = None
    command: list[str] = []
    resources: Resources = msgspec.field(default_factory=Resources)
    labels: dict[str, str] = {}
    health_checks: list[HealthCheck] = []
    constraints: list[Constraint] = []
    deployment: Deployment | None = None
    tasks: list[str] = []
    members: list[ServiceInstance] = []  # the instances, with health and version
    message: str | None = None  # why it waits (dependencies, placement, backoff)
    crashes: int = 0  # consecutive crashes of its instances (restart backoff)
    backoff_delay: float | None = None  # the current restart delay (seconds), after a crash
    raw: dict[str, Any] | None = None


class Volume(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A persistent volume: a reserved disk share with a directory on one agent."""

    name: str
    size: float  # MiB
    mount: str = ""
    agent_id: str | None = None
    role: str | None = None
    path: str | None = None  # the directory on the agent
    tasks: list[str] = []  # the non-terminal tasks using it
    attached: bool = True  # mounted in the namespace (umount detaches, keeping the data)
    service: str | None = None  # the service whose instance owns it (per-instance volumes)
    created_at: str | None = None


class Framework(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str
    kind: str
    mount: str = ""
    host: str = ""  # the namespace path of the cluster it runs on
    state: str = "RUNNING"
    service: str | None = None
    resources: Resources = msgspec.field(default_factory=Resources)


class JobRun(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One run of a batch job: its attempts (retries) are ordinary tasks.

    ``state``: PENDING STARTING RUNNING RETRYING (waiting its backoff) and, once over,
    SUCCESS FAILED TIMED_OUT KILLED SKIPPED (never started: missed its starting deadline, or
    forbidden by the concurrency policy). ``cause``: schedule | manual | parents | catch-up.
    """

    job: str
    run: int
    state: str
    cause: str = "manual"
    due_at: str | None = None  # when the schedule wanted it
    started_at: str | None = None
    finished_at: str | None = None
    duration: float | None = None  # seconds, first start to end
    attempts: int = 0
    exit_code: int | None = None
    signal: int | None = None
    task_id: str | None = None  # the latest attempt's task
    tasks: list[str] = []
    message: str | None = None


class Job(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A batch job (Chronos, Metronome, Aurora cron): a command, schedules, parents, retries.

    ``state``: RUNNING (a run is active) PAUSED SCHEDULED (a schedule will fire) WAITING
    (runs after its parents) IDLE (runs when asked) DONE (its schedules are exhausted).
    """

    name: str
    mount: str = ""
    backend: str = ""
    state: str = "IDLE"
    description: str | None = None
    command: list[str] = []
    shell: bool = False
    schedules: list[str] = []  # human form: expression (time zone)
    concurrency_policy: str = "ALLOW"
    starting_deadline: float | None = None
    parents: list[str] = []
    retries: int = 0
    timeout: float | None = None
    next_runs: list[str] = []
    last_success: str | None = None
    last_failure: str | None = None
    success_count: int = 0
    error_count: int = 0
    active_runs: int = 0
    runs: list[JobRun] = []  # the recent runs, newest last
    labels: dict[str, str] = {}
    created_at: str | None = None
    message: str | None = None
    raw: dict[str, Any] | None = None


class Event(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One state change, as streamed by ``events`` and ``ps -w``."""

    seq: int
    type: str  # TASK_ADDED TASK_UPDATED AGENT_UPDATED SERVICE_UPDATED …
    at: str
    mount: str = ""
    task: Task | None = None
    agent: Agent | None = None
    service: Service | None = None
    message: str | None = None


class TaskStats(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A sample for ``top``: usage next to what was allocated."""

    task_id: str
    name: str = ""
    mount: str = ""
    agent_id: str | None = None
    cpu_percent: float = 0.0
    rss: float = 0.0  # MiB
    allocated: Resources = msgspec.field(default_factory=Resources)
    processes: int = 0
    parent_task: str | None = None


class FileEntry(msgspec.Struct, omit_defaults=True, kw_only=True):
    """An entry of ``ls``: a namespace node or a file in a sandbox."""

    name: str
    kind: str  # dir | file | link | mount | task | agent | service | volume | framework
    size: int | None = None
    mtime: str | None = None
    mode: str | None = None
    detail: str | None = None


class OutputChunk(msgspec.Struct):
    """A piece of a task's output stream."""

    stream: str  # stdout | stderr
    data: bytes
    offset: int = 0


# The most instances of one run, service or job (a typo like 1e6 should not plan a million)
MAX_INSTANCES = 10_000


class RunSpec(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What ``run`` asks a backend to launch (one spec, ``instances`` copies)."""

    command: list[str]
    shell: bool = False
    name: str | None = None
    resources: Resources = msgspec.field(default_factory=lambda: Resources(cpus=0.1, mem=64))
    env: dict[str, str] = {}
    ports: list[str] = []  # port names; "" for an unnamed port
    # host port numbers, aligned with ``ports`` (0 = any free port): Marathon's requirePorts
    port_numbers: list[int] = []
    # render Aurora templates in the command at launch ({{thermos.ports[http]}}, {{mesos.instance}})
    templates: bool = False
    # a multi-process (Thermos) task: {processes: [...], order, max_failures, max_concurrency,
    # finalization_wait}, run in one sandbox; ``command`` then only names it
    processes: dict[str, Any] | None = None
    instances: int = 1
    role: str | None = None
    labels: dict[str, str] = {}
    idempotency_key: str | None = None
    tty: bool = False
    constraints: list[Constraint] = []
    partition: str | None = None
    after: list[str] = []
    volumes: list[str] = []
    workdir: str | None = None
    tier: str | None = None  # preferred | preemptible (None: the backend's default)
    priority: int | None = None  # preemption priority (None: 0)


# ---- encoding -------------------------------------------------------------------------------

_KINDS: dict[type, str] = {
    Task: "Task",
    Agent: "Agent",
    Service: "Service",
    Deployment: "Deployment",
    Volume: "Volume",
    Framework: "Framework",
    Job: "Job",
    JobRun: "JobRun",
    Event: "Event",
    TaskStats: "TaskStats",
    FileEntry: "FileEntry",
}


def _full(value: Any) -> Any:
    """Builtins with *every* field of each Struct (omit_defaults only shrinks the wire format:
    scripts get a stable schema, e.g. ``state`` even when it is the default)."""
    if isinstance(value, msgspec.Struct):
        return {f: _full(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [_full(v) for v in value]
    if isinstance(value, dict):
        return {k: _full(v) for k, v in value.items()}
    return msgspec.to_builtins(value)


def to_builtins(obj: Any, *, raw: bool = False) -> Any:
    """The JSON-ready form of a model object (with apiVersion and kind), or of a plain value."""
    if isinstance(obj, list | tuple):
        return [to_builtins(o, raw=raw) for o in obj]
    data = _full(obj)
    kind = kind_of(obj) if isinstance(obj, msgspec.Struct) else None
    if kind and isinstance(data, dict):
        if not raw:
            data.pop("raw", None)
        return {"apiVersion": API_VERSION, "kind": kind, **data}
    return data


def kind_of(obj: Any) -> str:
    """The ``kind`` of a model object: its class name for any msgspec Struct."""
    return _KINDS.get(type(obj), type(obj).__name__)
