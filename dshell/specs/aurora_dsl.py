"""The Aurora configuration DSL, written with pystachio (imported only by the evaluator process).

The names and fields follow Aurora's public configuration reference
(``docs/reference/configuration.md``): Process, Task, Resources, Job/Service, UpdateConfig,
HealthCheckConfig, Announcer, LifecycleConfig, the ``order`` helper, SequentialTask and
SimpleTask, and the MB/GB/TB constants. Container types exist so that files using them load;
the parent process then refuses them with a clear message.
"""

from __future__ import annotations

import itertools
from typing import Any

import pystachio
from pystachio import (
    Boolean,
    Choice,
    Default,
    Empty,
    Enum,
    Float,
    Integer,
    List,
    Map,
    Required,
    String,
    Struct,
)

BYTES = 1
KB = 1024 * BYTES
MB = 1024 * KB
GB = 1024 * MB
TB = 1024 * GB


class Resources(Struct):
    cpu = Required(Float)
    ram = Required(Integer)  # bytes
    disk = Required(Integer)  # bytes
    gpu = Default(Integer, 0)


class Constraint(Struct):
    order = List(String)


class RotatePolicy(Struct):
    log_size = Default(Integer, 100 * MB)
    backups = Default(Integer, 5)


LoggerDestination = Enum("file", "console", "both", "none")
LoggerMode = Enum("standard", "rotate")


class Logger(Struct):
    destination = Default(LoggerDestination, LoggerDestination("file"))
    mode = Default(LoggerMode, LoggerMode("standard"))
    rotate = RotatePolicy


class Process(Struct):
    cmdline = Required(String)
    name = Required(String)
    resources = Resources
    max_failures = Default(Integer, 1)
    daemon = Default(Boolean, False)
    ephemeral = Default(Boolean, False)
    min_duration = Default(Integer, 5)
    final = Default(Boolean, False)
    logger = Default(Logger, Empty)


class Task(Struct):
    name = Default(String, "{{processes[0].name}}")
    processes = List(Process)
    constraints = Default(List(Constraint), [])
    resources = Resources
    max_failures = Default(Integer, 1)
    max_concurrency = Default(Integer, 0)
    finalization_wait = Default(Integer, 30)
    user = String


class UpdateConfig(Struct):
    batch_size = Default(Integer, 1)
    watch_secs = Default(Integer, 45)
    max_per_shard_failures = Default(Integer, 0)
    max_total_failures = Default(Integer, 0)
    rollback_on_failure = Default(Boolean, True)
    wait_for_batch_completion = Default(Boolean, False)
    pulse_interval_secs = Integer


class HttpHealthChecker(Struct):
    endpoint = Default(String, "/health")
    expected_response = Default(String, "ok")
    expected_response_code = Default(Integer, 0)


class ShellHealthChecker(Struct):
    shell_command = Required(String)


class HealthCheckerConfig(Struct):
    http = HttpHealthChecker
    shell = ShellHealthChecker


DefaultHealthChecker = HealthCheckerConfig(http=HttpHealthChecker())


class HealthCheckConfig(Struct):
    health_checker = Default(HealthCheckerConfig, DefaultHealthChecker)
    initial_interval_secs = Default(Float, 15.0)
    interval_secs = Default(Float, 10.0)
    max_consecutive_failures = Default(Integer, 0)
    min_consecutive_successes = Default(Integer, 1)
    timeout_secs = Default(Float, 1.0)


class HttpLifecycleConfig(Struct):
    port = Default(String, "health")
    graceful_shutdown_endpoint = Default(String, "/quitquitquit")
    shutdown_endpoint = Default(String, "/abortabortabort")
    graceful_shutdown_wait_secs = Default(Integer, 5)
    shutdown_wait_secs = Default(Integer, 5)


class LifecycleConfig(Struct):
    http = HttpLifecycleConfig


DisableLifecycle = LifecycleConfig()
DefaultLifecycleConfig = LifecycleConfig(http=HttpLifecycleConfig())


class Announcer(Struct):
    primary_port = Default(String, "http")
    portmap = Default(Map(String, String), {"aurora": "{{primary_port}}"})
    zk_path = String


class Parameter(Struct):
    name = Required(String)
    value = Required(String)


class Docker(Struct):
    image = Required(String)
    parameters = Default(List(Parameter), [])


class AppcImage(Struct):
    name = Required(String)
    image_id = Required(String)


class DockerImage(Struct):
    name = Required(String)
    tag = Required(String)


Mode = Enum("RO", "RW")


class Volume(Struct):
    container_path = Required(String)
    host_path = Required(String)
    mode = Required(Mode)


class Mesos(Struct):
    image = Choice([AppcImage, DockerImage])
    volumes = Default(List(Volume), [])


class Container(Struct):
    docker = Docker


class PartitionPolicy(Struct):
    reschedule = Default(Boolean, True)
    delay_secs = Default(Integer, 0)


class Metadata(Struct):
    key = Required(String)
    value = Required(String)


class CountSlaPolicy(Struct):
    count = Required(Integer)
    duration_secs = Required(Integer)


class PercentageSlaPolicy(Struct):
    percentage = Required(Float)
    duration_secs = Required(Integer)


class CoordinatorSlaPolicy(Struct):
    coordinator_url = Required(String)
    status_key = Default(String, "drain")


class MesosJob(Struct):
    name = Default(String, "{{task.name}}")
    role = Required(String)
    contact = String
    cluster = Required(String)
    environment = Required(String)
    instances = Default(Integer, 1)
    task = Required(Task)
    announce = Announcer
    tier = String
    cron_schedule = String
    cron_collision_policy = Default(String, "KILL_EXISTING")
    update_config = Default(UpdateConfig, UpdateConfig())
    constraints = Map(String, String)
    metadata = Default(List(Metadata), [])
    service = Default(Boolean, False)
    max_task_failures = Default(Integer, 1)
    production = Default(Boolean, False)
    priority = Default(Integer, 0)
    health_check_config = Default(HealthCheckConfig, HealthCheckConfig())
    lifecycle = Default(LifecycleConfig, DefaultLifecycleConfig)
    enable_hooks = Default(Boolean, False)
    partition_policy = PartitionPolicy
    sla_policy = Choice([CountSlaPolicy, PercentageSlaPolicy, CoordinatorSlaPolicy])
    container = Choice([Container, Docker, Mesos])


Job = MesosJob
Service = Job(service=True)


def _process_name(process: Any) -> str:
    if isinstance(process, Process):
        return str(process.name().get())
    if isinstance(process, str):
        return process
    raise ValueError(f"order() takes Process objects or names, got {process!r}")


def order(*processes: Any) -> list[Any]:
    """``order(a, b, c)``: a Constraint list that runs the processes one after the other."""
    return [Constraint(order=[_process_name(p) for p in processes])]


def SimpleTask(name: str, command: str) -> Any:
    """A one-process task with Aurora's simple defaults (1 cpu, 1 GB ram, 1 GB disk)."""
    return Task(
        name=name,
        processes=[Process(name=name, cmdline=command)],
        resources=Resources(cpu=1.0, ram=1 * GB, disk=1 * GB),
    )


def SequentialTask(*args: Any, **kwargs: Any) -> Any:
    """A Task whose processes run one after the other, in list order."""
    task = Task(*args, **kwargs)
    if task.constraints() is not Empty and task.constraints().get():
        raise ValueError("a SequentialTask cannot have constraints of its own")
    if task.processes() is Empty:
        return task
    return task(constraints=order(*task.processes()))


def _sum(tasks: tuple[Any, ...], pick: Any) -> Any:
    res = [t.resources() for t in tasks if t.resources() is not Empty]
    return Resources(
        cpu=pick(r.cpu().get() for r in res) if res else 0,
        ram=pick(r.ram().get() for r in res) if res else 0,
        disk=pick(r.disk().get() for r in res) if res else 0,
    )


def combine_tasks(*tasks: Any, **kwargs: Any) -> Any:
    """One task running the processes of all ``tasks`` in parallel (resources added up)."""
    if not tasks:
        return Task()
    processes = [p for t in tasks for p in t.processes()]
    constraints = [c for t in tasks for c in t.constraints()]
    return tasks[-1](
        processes=processes, constraints=constraints, resources=_sum(tasks, sum), **kwargs
    )


def concat_tasks(*tasks: Any, **kwargs: Any) -> Any:
    """One task running the processes of each task after those of the previous one."""
    if not tasks:
        return Task()
    base = combine_tasks(*tasks)
    constraints = [c for t in tasks for c in t.constraints()]
    for first, second in itertools.pairwise(tasks):
        constraints += [
            Constraint(order=[p1.name().get(), p2.name().get()])
            for p1 in first.processes()
            for p2 in second.processes()
        ]
    return base(constraints=constraints, resources=_sum(tasks, max), **kwargs)


def namespace() -> dict[str, Any]:
    """The globals an Aurora file is evaluated with: pystachio, then this schema."""
    names: dict[str, Any] = {
        n: getattr(pystachio, n) for n in dir(pystachio) if not n.startswith("_")
    }
    names.update(
        {
            n: v
            for n, v in globals().items()
            if not n.startswith("_") and n not in ("annotations", "Any", "pystachio", "namespace")
        }
    )
    return names
