"""One exported Aurora job (JSON from the evaluator) -> ServiceSpec or BatchJobSpec.

Mapping (Aurora semantics from ``docs/reference/configuration.md``):

- ``Resources.ram``/``disk`` are bytes: they become MiB.
- Ports are the ``{{thermos.ports[name]}}`` the task refers to, plus the Announcer's primary
  port, after the Announcer ``portmap`` (aliases and static numbers) is applied.
- ``HealthCheckConfig``: a shell checker gives a COMMAND check; otherwise an HTTP check on the
  ``health`` port, only when the task asks for that port (as Aurora does).
  ``initial_interval_secs`` is the grace period. Aurora's ``max_consecutive_failures`` counts
  the failures *tolerated*, so the task is killed after that many plus one.
- ``LifecycleConfig.http`` applies when its port is requested.
- Constraints ``{'attr': 'v'}`` -> IS, ``'v1,v2'`` -> LIKE, ``'!v'`` -> UNLIKE, ``'limit:N'`` ->
  MAX_PER; the ``host`` attribute is the hostname.
- ``Task.finalization_wait`` is the kill grace period; ``UpdateConfig.batch_size`` bounds the
  rolling update (``minimum_health_capacity = 1 - batch_size/instances``, no over-capacity).
- ``cron_schedule`` -> a BatchJobSpec schedule (``KILL_EXISTING`` = REPLACE, ``CANCEL_NEW`` =
  FORBID); ``max_task_failures`` N -> N-1 retries (-1 = until success).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dshell.specs.model import (
    AnnounceSpec,
    BatchJobSpec,
    Constraint,
    HealthCheckSpec,
    LifecycleSpec,
    PortSpec,
    ProcessSpec,
    ResourceSpec,
    ScheduleSpec,
    ServiceSpec,
    UpdateConfigSpec,
    UpgradeStrategySpec,
)
from dshell.specs.reader import Reader

PORT_REF = re.compile(r"\{\{\s*thermos\.ports\[([^\]\s]+)\]\s*\}\}")
ENVIRONMENT = re.compile(r"^(prod|devel|test|staging\d*)$")
MIB = 1024 * 1024
_COLLISION = {"KILL_EXISTING": "REPLACE", "CANCEL_NEW": "FORBID"}


def _escape(value: str) -> str:
    """``value`` as a regex literal (only metacharacters escaped, unlike re.escape)."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", value)


def job_key(data: dict[str, object]) -> str:
    return "/".join(str(data.get(k, "")) for k in ("cluster", "role", "environment", "name"))


def _processes(task: Reader) -> tuple[list[ProcessSpec], list[list[str]]]:
    procs = []
    for p in task.children("processes"):
        proc = ProcessSpec(
            name=p.text("name", "", required=True) or "",
            cmdline=p.text("cmdline", "", required=True) or "",
            max_failures=p.integer("max_failures", 1) or 0,
            daemon=p.flag("daemon", False),
            ephemeral=p.flag("ephemeral", False),
            final=p.flag("final", False),
            min_duration=p.number("min_duration", 5.0) or 0.0,
        )
        p.issues.note(proc, p.path)
        p.finish(ignore=("logger", "resources"))
        procs.append(proc)
    order = [c.texts("order") for c in task.children("constraints")]
    return procs, [o for o in order if o]


def _resources(task: Reader) -> ResourceSpec:
    res = task.child("resources")
    if res is None:
        task.issues.error(
            task.at("resources"), "the task needs Resources(cpu=..., ram=..., disk=...)"
        )
        return ResourceSpec()
    spec = ResourceSpec(
        cpus=res.number("cpu", 0.0, required=True) or 0.0,
        mem=(res.number("ram", 0.0, required=True) or 0.0) / MIB,
        disk=(res.number("disk", 0.0, required=True) or 0.0) / MIB,
        gpus=res.number("gpu", 0.0) or 0.0,
    )
    res.issues.note(spec, res.path, {"cpus": "cpu", "mem": "ram", "gpus": "gpu"})
    res.finish()
    return spec


def _ports(r: Reader, announce: AnnounceSpec | None) -> tuple[list[PortSpec], dict[str, str]]:
    """The ports to allocate and, for each referenced name, the name it resolves to."""
    text = json.dumps(r.data.get("task", {})) + json.dumps(r.data.get("health_check_config", {}))
    wanted = set(PORT_REF.findall(text))
    portmap = dict(announce.portmap) if announce else {}
    if announce:
        wanted |= {announce.primary_port, *portmap}
    resolved: dict[str, str] = {}
    for name in sorted(wanted):
        target, hops = name, 0
        while target in portmap and hops < 16:  # follow aliases; a loop stops after 16 hops
            target, hops = portmap[target], hops + 1
        resolved[name] = target
    names = sorted({t for t in resolved.values() if not (t.isascii() and t.isdigit())})
    static = sorted({n for n, t in resolved.items() if t.isascii() and t.isdigit()})
    ports = [PortSpec(name=n) for n in names] + [
        PortSpec(name=n, number=int(resolved[n])) for n in static if n not in names
    ]
    for port in ports:
        r.issues.note(port, r.at("task"))
    return ports, resolved


def _announce(r: Reader) -> AnnounceSpec | None:
    a = r.child("announce")
    if a is None:
        return None
    spec = AnnounceSpec(
        primary_port=a.text("primary_port", "http") or "http",
        portmap=a.text_map("portmap"),
        zk_path=a.text("zk_path"),
    )
    a.issues.note(spec, a.path)
    a.finish()
    return spec


def _health(r: Reader, resolved: dict[str, str]) -> list[HealthCheckSpec]:
    h = r.child("health_check_config")
    if h is None:
        return []
    checker = h.child("health_checker")
    shell = checker.child("shell") if checker else None
    http = checker.child("http") if checker else None
    common: dict[str, Any] = {
        "grace_period": h.number("initial_interval_secs", 15.0) or 0.0,
        "interval": h.number("interval_secs", 10.0) or 0.0,
        "timeout": h.number("timeout_secs", 1.0) or 0.0,
        "delay": 0.0,
        "max_consecutive_failures": (h.integer("max_consecutive_failures", 0) or 0) + 1,
    }
    h.finish(ignore=("min_consecutive_successes",))
    if shell is not None:
        hc = HealthCheckSpec(
            protocol="COMMAND", command=shell.text("shell_command", "", required=True), **common
        )
    elif "health" in resolved and http is not None:
        code = http.integer("expected_response_code", 0)
        hc = HealthCheckSpec(
            protocol="HTTP",
            path=http.text("endpoint", "/health"),
            port_name=resolved["health"],
            expected_status=code or None,
            expected_response=http.text("expected_response", "ok") or None,
            **common,
        )
    else:
        return []
    r.issues.note(
        hc,
        h.path,
        {
            "grace_period": "initial_interval_secs",
            "interval": "interval_secs",
            "timeout": "timeout_secs",
        },
    )
    return [hc]


def _lifecycle(r: Reader, resolved: dict[str, str]) -> LifecycleSpec | None:
    life = r.child("lifecycle")
    http = life.child("http") if life else None
    if http is None:
        return None
    port = http.text("port", "health") or "health"
    if port not in resolved:
        return None  # Aurora: the HTTP lifecycle only applies when the task asks for the port
    spec = LifecycleSpec(
        http_port_name=resolved[port],
        graceful_shutdown_endpoint=http.text("graceful_shutdown_endpoint", "/quitquitquit") or "",
        shutdown_endpoint=http.text("shutdown_endpoint", "/abortabortabort") or "",
        graceful_shutdown_wait=http.number("graceful_shutdown_wait_secs", 5.0) or 0.0,
        shutdown_wait=http.number("shutdown_wait_secs", 5.0) or 0.0,
    )
    http.issues.note(spec, http.path, {"http_port_name": "port"})
    return spec


def _constraints(r: Reader, role: str) -> list[Constraint]:
    out = []
    for attr, spec in r.text_map("constraints").items():
        field = "hostname" if attr == "host" else attr
        values = spec.lstrip("!").split(",")
        if spec.startswith("limit:"):
            c = Constraint(field, "MAX_PER", spec[len("limit:") :])
        elif spec.startswith("!"):
            c = Constraint(field, "UNLIKE", "|".join(_escape(v) for v in values))
        elif len(values) > 1:
            c = Constraint(field, "LIKE", "|".join(_escape(v) for v in values))
        else:
            c = Constraint(field, "IS", spec)
        if attr == "dedicated" and spec.split("/", 1)[0] not in (role, "*"):
            r.issues.error(
                r.at("constraints", attr),
                f"a dedicated constraint must start "
                f"with the job's role or '*': expected '{role}/...', got {spec!r}",
            )
        r.issues.note(c, r.at("constraints", attr), {"field": (), "operator": (), "value": ()})
        out.append(c)
    return out


def _update(r: Reader, instances: int) -> tuple[UpdateConfigSpec | None, UpgradeStrategySpec]:
    u = r.child("update_config")
    if u is None:
        return None, UpgradeStrategySpec()
    spec = UpdateConfigSpec(
        batch_size=u.integer("batch_size", 1) or 1,
        watch_secs=u.number("watch_secs", 45.0) or 0.0,
        max_per_shard_failures=u.integer("max_per_shard_failures", 0) or 0,
        max_total_failures=u.integer("max_total_failures", 0) or 0,
        rollback_on_failure=u.flag("rollback_on_failure", True),
        wait_for_batch_completion=u.flag("wait_for_batch_completion", False),
    )
    u.issues.note(spec, u.path)
    u.finish(ignore=("pulse_interval_secs",))
    healthy = max(0.0, 1.0 - spec.batch_size / instances) if instances > 0 else 0.0
    upgrade = UpgradeStrategySpec(
        minimum_health_capacity=round(healthy, 6), maximum_over_capacity=0.0
    )
    u.issues.note(upgrade, u.path, {"minimum_health_capacity": "batch_size"})
    return spec, upgrade


def _labels(r: Reader) -> dict[str, str]:
    labels = {m.text("key", "") or "": m.text("value", "") or "" for m in r.children("metadata")}
    contact = r.text("contact")
    if contact:
        labels["contact"] = contact
    return labels


def _parts(r: Reader) -> dict[str, Any]:
    """The fields a service and a job share, read from the job ``r``."""
    task = r.child("task") or Reader({}, r.at("task"), r.issues)
    processes, order = _processes(task)
    role = r.text("role", "", required=True) or ""
    env = r.text("environment", "devel") or ""
    if not ENVIRONMENT.match(env):
        r.issues.error(
            r.at("environment"), f"expected prod, devel, test or staging<N>, got {env!r}"
        )
    if r.has("container"):
        r.issues.error(
            r.at("container"),
            "containers (Docker or Mesos images) are not supported:"
            " dshell runs the processes directly",
        )
    out: dict[str, Any] = {
        "name": r.text("name", "", required=True) or "",
        "role": role,
        "environment": env,
        "cluster": r.text("cluster"),
        "processes": processes,
        "process_order": order,
        "command": [processes[0].cmdline] if len(processes) == 1 else [],
        "shell": len(processes) == 1,
        "resources": _resources(task),
        "instances": r.integer("instances", 1) or 0,
        "labels": _labels(r),
        "constraints": _constraints(r, role),
        "kill_grace_period": task.number("finalization_wait", 30.0),
    }
    if task.text("name") not in (None, out["name"]):
        out["task_name"] = task.text("name")
    return out


def _service(r: Reader, common: dict[str, Any]) -> ServiceSpec:
    task = r.child("task") or Reader({}, r.at("task"), r.issues)
    announce = _announce(r)
    ports, resolved = _ports(r, announce)
    update, upgrade = _update(r, common["instances"])
    tier = r.text("tier") or ("preferred" if r.flag("production", False) else None)
    svc = ServiceSpec(
        **common,
        ports=ports,
        require_ports=any(p.number for p in ports),
        health_checks=_health(r, resolved),
        lifecycle=_lifecycle(r, resolved),
        announce=announce,
        update_config=update,
        upgrade_strategy=upgrade,
        tier=tier,
        priority=r.integer("priority", 0) or 0,
        max_process_failures=task.integer("max_failures", 1) or 0,
        max_concurrency=task.integer("max_concurrency", 0) or 0,
    )
    r.issues.note(
        svc,
        r.path,
        {
            "command": ("task", "processes"),
            "kill_grace_period": ("task", "finalization_wait"),
            "resources": ("task", "resources"),
        },
    )
    return svc


def _job(r: Reader, common: dict[str, Any]) -> BatchJobSpec:
    schedules = []
    cron = r.text("cron_schedule")
    if cron is not None:
        policy = r.text("cron_collision_policy", "KILL_EXISTING") or ""
        if policy not in _COLLISION:
            r.issues.error(
                r.at("cron_collision_policy"),
                f"expected KILL_EXISTING or CANCEL_NEW, got {policy!r}",
            )
        sched = ScheduleSpec(cron=cron, concurrency_policy=_COLLISION.get(policy, "REPLACE"))
        r.issues.note(
            sched, r.path, {"cron": "cron_schedule", "concurrency_policy": "cron_collision_policy"}
        )
        schedules.append(sched)
    failures = r.integer("max_task_failures", 1) or 0
    job = BatchJobSpec(
        **common, schedules=schedules, retries=-1 if failures < 0 else max(failures - 1, 0)
    )
    r.issues.note(job, r.path, {"command": ("task", "processes"), "retries": "max_task_failures"})
    return job


# Fields of an exported Job that carry no meaning here; accepted silently.
_IGNORED = (
    "enable_hooks",
    "task_links",
    "partition_policy",
    "sla_policy",
    "production",
    "max_task_failures",
    "cron_collision_policy",
    "update_config",
    "health_check_config",
    "lifecycle",
    "announce",
    "tier",
    "priority",
    "service",
    "cron_schedule",
    "metadata",
    "contact",
    "task",
)


def convert(r: Reader) -> ServiceSpec | BatchJobSpec | None:
    """The model object for one exported job, or None when it is not an object."""
    if not r.data:
        return None
    common = _parts(r)
    service = r.flag("service", False)
    if service and r.has("cron_schedule"):
        r.issues.error(r.at("cron_schedule"), "a service cannot have a cron_schedule")
    spec: ServiceSpec | BatchJobSpec = _service(r, common) if service else _job(r, common)
    r.finish(ignore=_IGNORED)
    return spec
