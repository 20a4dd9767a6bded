"""The normalized spec model: what every loader (native, Marathon, Aurora, Chronos, ...) yields.

One model, backend-neutral. Names are snake_case; times are seconds (float); memory and disk are
MiB, as in Mesos. Defaults are the native format's defaults (Mesos HealthCheck for checks,
Marathon for the rest); loaders of other formats fill in their own format's defaults explicitly,
so a spec loaded from a Marathon file carries Marathon's values, not these.

Templates written in Aurora's Mustache style (``{{thermos.ports[http]}}``, ``{{mesos.instance}}``,
``{{mesos.hostname}}``, ``{{thermos.task_id}}``) are kept verbatim in commands; the engine renders
them at launch with :func:`dshell.specs.templates.render_templates`.
"""

from __future__ import annotations

import msgspec

from dshell.model import Constraint

__all__ = [
    "AnnounceSpec",
    "BackoffSpec",
    "BatchJobSpec",
    "Constraint",
    "GroupSpec",
    "HealthCheckSpec",
    "LifecycleSpec",
    "LoadedSpec",
    "PortSpec",
    "ProcessSpec",
    "ReadinessCheckSpec",
    "ResourceSpec",
    "ScheduleSpec",
    "ServiceSpec",
    "UnreachableSpec",
    "UpdateConfigSpec",
    "UpgradeStrategySpec",
    "VolumeSpec",
]

_S = {"omit_defaults": True, "kw_only": True, "forbid_unknown_fields": True}


class ResourceSpec(msgspec.Struct, **_S):
    """Per-instance resources. Defaults are Marathon's (cpus 1, mem 128 MiB)."""

    cpus: float = 1.0
    mem: float = 128.0  # MiB
    disk: float = 0.0  # MiB (sandbox; persistent volumes are counted separately)
    gpus: float = 0.0


class PortSpec(msgspec.Struct, **_S):
    """A port a task asks for. ``number`` 0 means "any free port" (dynamic)."""

    name: str | None = None
    number: int = 0
    protocol: str = "tcp"  # tcp | udp | udp,tcp
    labels: dict[str, str] = {}


class HealthCheckSpec(msgspec.Struct, **_S):
    """A health check with Mesos/Marathon semantics (all times in seconds).

    ``max_consecutive_failures``: the task is killed after this many consecutive failed checks;
    **0 means never kill a task for failing checks** (it is only reported unhealthy), as in
    Marathon. Failures during ``grace_period`` after the task starts (or until its first success)
    are not counted. The first check runs ``delay`` seconds after start.

    Exactly one of ``port_index``, ``port_name``, ``port`` selects the port of HTTP/HTTPS/TCP
    checks; loaders canonicalise an index that points at a named port to ``port_name``.
    """

    protocol: str = "HTTP"  # COMMAND | HTTP | HTTPS | TCP
    command: str | None = None  # COMMAND: run by the shell; exit 0 = healthy
    path: str | None = None  # HTTP(S): request path, "/" when unset
    port_index: int | None = None
    port_name: str | None = None
    port: int | None = None
    grace_period: float = 10.0
    interval: float = 10.0
    timeout: float = 20.0
    delay: float = 15.0
    max_consecutive_failures: int = 3
    expected_response: str | None = None  # Aurora: the body must equal this (case-insensitive)
    expected_status: int | None = None  # Aurora: the status must equal this (else 200-399)
    # dshell: HTTP over this Unix socket (an absolute path) instead of a port (nested engines)
    unix_socket: str | None = None


class ReadinessCheckSpec(msgspec.Struct, **_S):
    """Marathon readiness check: a new task counts as ready for a deployment when it answers."""

    name: str = "readinessCheck"
    protocol: str = "HTTP"  # HTTP | HTTPS
    path: str = "/"
    port_name: str = "http-api"
    interval: float = 30.0
    timeout: float = 10.0  # must be smaller than interval
    http_status_codes_for_ready: list[int] = msgspec.field(default_factory=lambda: [200])
    preserve_last_response: bool = False


class UpgradeStrategySpec(msgspec.Struct, **_S):
    """Rolling deployment bounds, as fractions of ``instances`` (Marathon's upgradeStrategy)."""

    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0
    max_failures: int = 3  # failed new-version instances that fail a deployment (dshell)


class UpdateConfigSpec(msgspec.Struct, **_S):
    """Aurora's UpdateConfig, kept for backends that update in batches (times in seconds)."""

    batch_size: int = 1
    watch_secs: float = 45.0
    max_per_shard_failures: int = 0
    max_total_failures: int = 0
    rollback_on_failure: bool = True
    wait_for_batch_completion: bool = False


class BackoffSpec(msgspec.Struct, **_S):
    """Relaunch delay: ``seconds``, multiplied by ``factor`` per failure, capped at the max."""

    seconds: float = 1.0
    factor: float = 1.15
    max_launch_delay: float = 300.0
    stable_after: float = 60.0  # dshell: a run this long (and healthy) resets the delay


class UnreachableSpec(msgspec.Struct, **_S):
    """Marathon's unreachableStrategy: replace a task unreachable for ``inactive_after`` s."""

    disabled: bool = False
    inactive_after: float = 300.0
    expunge_after: float = 600.0


class VolumeSpec(msgspec.Struct, **_S):
    """A persistent volume, mounted at ``container_path`` (relative to the sandbox)."""

    container_path: str
    size: float  # MiB
    name: str | None = None
    mode: str = "RW"
    type: str = "root"  # root | path | mount (Mesos disk types)
    max_size: float | None = None


class LifecycleSpec(msgspec.Struct, **_S):
    """Aurora HTTP lifecycle: on kill, POST the graceful endpoint, wait, POST the final one, wait,
    then SIGTERM (and SIGKILL after ``kill_grace_period``). Times in seconds."""

    http_port_name: str = "health"
    graceful_shutdown_endpoint: str = "/quitquitquit"
    shutdown_endpoint: str = "/abortabortabort"
    graceful_shutdown_wait: float = 5.0
    shutdown_wait: float = 5.0


class AnnounceSpec(msgspec.Struct, **_S):
    """Aurora Announcer: register each instance in a ZooKeeper serverset.

    ``portmap`` maps extra endpoint names to a port name (an alias) or to a static number.
    """

    primary_port: str = "http"
    portmap: dict[str, str] = {}
    zk_path: str | None = None


class ProcessSpec(msgspec.Struct, **_S):
    """One Thermos process of a multi-process task (Aurora semantics)."""

    name: str
    cmdline: str
    max_failures: int = 1  # 0 = retry until it succeeds
    daemon: bool = False  # rerun after a successful exit too
    ephemeral: bool = False  # its status does not decide the task's
    final: bool = False  # runs in the finalization stage
    min_duration: float = 5.0  # minimum seconds between two runs


class ServiceSpec(msgspec.Struct, **_S):
    """A long-running service (Marathon app, Aurora service job, native ``[service]``)."""

    name: str
    command: list[str] = []  # argv; with shell=True, one element run by /bin/sh -c
    shell: bool = False
    processes: list[ProcessSpec] = []
    process_order: list[list[str]] = []  # Aurora order() constraints between processes
    task_name: str | None = None
    max_process_failures: int = 1
    max_concurrency: int = 0  # 0 = unlimited
    resources: ResourceSpec = msgspec.field(default_factory=ResourceSpec)
    instances: int = 1
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    role: str | None = None
    environment: str | None = None  # Aurora: prod | devel | test | staging<N>
    cluster: str | None = None  # Aurora job key's cluster
    ports: list[PortSpec] = []
    require_ports: bool = False
    health_checks: list[HealthCheckSpec] = []
    readiness_checks: list[ReadinessCheckSpec] = []
    upgrade_strategy: UpgradeStrategySpec = msgspec.field(default_factory=UpgradeStrategySpec)
    update_config: UpdateConfigSpec | None = None
    backoff: BackoffSpec = msgspec.field(default_factory=BackoffSpec)
    kill_grace_period: float | None = None  # None = the backend's default
    kill_selection: str = "YOUNGEST_FIRST"  # or OLDEST_FIRST
    unreachable_strategy: UnreachableSpec = msgspec.field(default_factory=UnreachableSpec)
    constraints: list[Constraint] = []
    volumes: list[VolumeSpec] = []
    lifecycle: LifecycleSpec | None = None
    announce: AnnounceSpec | None = None
    dependencies: list[str] = []
    tier: str | None = None
    priority: int = 0
    version: str | None = None


class GroupSpec(msgspec.Struct, **_S):
    """A group of services and nested groups (Marathon groups); ids are path-like."""

    name: str
    services: list[ServiceSpec] = []
    groups: list[GroupSpec] = []
    dependencies: list[str] = []

    def all_services(self) -> list[ServiceSpec]:
        """Every service of this group and of its nested groups, depth first."""
        out = list(self.services)
        for group in self.groups:
            out.extend(group.all_services())
        return out


class ScheduleSpec(msgspec.Struct, **_S):
    """When a batch job runs: a 5-field ``cron`` expression or an ISO 8601 repeating interval
    (``R5/2026-12-01T00:00:00Z/PT1H``), never both."""

    id: str = "default"
    cron: str | None = None
    iso8601: str | None = None
    timezone: str = "UTC"
    starting_deadline: float | None = None  # seconds a late run may still start
    concurrency_policy: str = "ALLOW"  # ALLOW | FORBID | REPLACE
    enabled: bool = True


class BatchJobSpec(msgspec.Struct, **_S):
    """A run-to-completion job, optionally scheduled (Chronos, Metronome, Aurora cron)."""

    name: str
    command: list[str] = []
    shell: bool = False
    processes: list[ProcessSpec] = []
    process_order: list[list[str]] = []
    task_name: str | None = None  # Aurora: the Thermos task's own name when it differs
    description: str | None = None
    resources: ResourceSpec = msgspec.field(default_factory=ResourceSpec)
    instances: int = 1
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    role: str | None = None
    environment: str | None = None
    cluster: str | None = None
    schedules: list[ScheduleSpec] = []
    retries: int = 0  # -1 = retry until it succeeds
    retry_backoff: BackoffSpec = msgspec.field(default_factory=BackoffSpec)
    retry_deadline: float | None = None  # stop retrying this many seconds after the first start
    timeout: float | None = None  # kill a run after this many seconds
    after: list[str] = []  # parent jobs that must succeed first
    constraints: list[Constraint] = []
    kill_grace_period: float | None = None


class LoadedSpec(msgspec.Struct, **_S):
    """What a loader returns: the specs of one file, its warnings, and where it came from."""

    kind: str  # service | group | job | mixed
    format: str  # native | marathon | aurora | chronos | metronome
    source: str
    services: list[ServiceSpec] = []
    groups: list[GroupSpec] = []
    jobs: list[BatchJobSpec] = []
    warnings: list[str] = []

    def all_services(self) -> list[ServiceSpec]:
        """Top-level services followed by every service of every group."""
        out = list(self.services)
        for group in self.groups:
            out.extend(group.all_services())
        return out


def kind_of(services: int, groups: int, jobs: int) -> str:
    """The ``LoadedSpec.kind`` for a file holding these many objects of each sort."""
    present = [k for k, n in (("service", services), ("group", groups), ("job", jobs)) if n]
    return present[0] if len(present) == 1 else "mixed"
