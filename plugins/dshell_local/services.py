"""The services controller: long-running services on the embedded engine (Marathon's role).

A service is a desired state — a spec version and an instance count — that the controller
keeps true by launching and killing *instances* (engine tasks labelled ``dshell.service``,
``dshell.version`` and ``dshell.instance``). Everything it decides follows from that desired
state and from the instances it finds, so a restart of the engine resumes every service and
every deployment where it was: the records persist in the engine's database (table
``services``), the instances are re-adopted by the engine's recovery, and the next
reconciliation carries on. A healthy instance is never restarted by a restart of the engine.

Reconciliation of one service (``_reconcile``), in Marathon's terms:

* **steady state** (no deployment running): launch instances of the current version up to
  ``instances``; kill the surplus (unhealthy first, then by ``kill_selection``). An instance
  that ended on its own, or was killed for failing its health checks, is a *crash*: the next
  launch waits the restart backoff (``seconds * factor^(crashes-1)``, capped at
  ``max_launch_delay``), reset once an instance has run ``stable_after`` seconds (healthy,
  when it has checks). An instance killed by a user (``dshell kill``) is replaced at once.
* **rolling deployment** to a new version (Marathon's upgradeStrategy): with
  ``n = instances``, ``min_healthy = ⌈n * minimum_health_capacity⌉`` and
  ``max_total = n + ⌊n * maximum_over_capacity⌋``, old instances are killed only while the
  healthy ones (healthy old + ready new) stay at least ``min_healthy`` — unhealthy old ones
  go first — and new ones are launched only while every instance still alive (including
  those being killed) stays at most ``max_total``. When ``min_healthy == max_total`` and the
  service is full (minimumHealthCapacity 1, maximumOverCapacity 0) nothing could move, so one
  extra instance is allowed, as Marathon does. A new instance is *ready* when it runs, passes
  its health checks (if any) and its readiness checks (if any). The deployment succeeds when
  ``n`` new instances are ready and no old one is left; it fails after
  ``upgrade_strategy.max_failures`` new instances failed, and then rolls back when it was
  asked to (``rollback_on_failure``).
* **dependencies**: a service launches nothing until every service it depends on is
  healthy (all its instances ready, no deployment running); stopping or removing stops the
  dependants first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from dshell.errors import ConflictError, DshellError, NotFoundError, TimeoutExpired, UsageError
from dshell.model import (
    MAX_INSTANCES,
    Deployment,
    Endpoint,
    HealthCheck,
    Resources,
    RunSpec,
    Service,
    ServiceInstance,
    ServiceVersion,
    TaskState,
)
from dshell.specs.model import GroupSpec, ServiceSpec

from . import thermos
from .submit import INSTANCE_LABEL, SERVICE_LABEL, VERSION_LABEL
from .svcapi import DeployRequest, PlanItem, ServiceCall
from .tasks import REASON_DRAINING, REASON_KILLED, REASON_PREEMPTED, TaskRecord, utcnow

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

MAX_VERSIONS = 20  # versions kept per service (the current one always stays)
MAX_HISTORY = 10  # finished deployments kept per service
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
ACTIVE_DEPLOYMENT = ("RUNNING", "PAUSED")
HEALTHY, UNHEALTHY = "HEALTHY", "UNHEALTHY"


class Version(msgspec.Struct, kw_only=True):
    id: str
    created_at: str
    cause: str  # deploy | restart | rollback
    spec: ServiceSpec


class DeploymentRec(msgspec.Struct, kw_only=True):
    id: str
    to_version: str
    from_version: str | None
    state: str  # RUNNING PAUSED SUCCEEDED FAILED ABORTED
    cause: str
    started_at: str
    finished_at: str | None = None
    message: str | None = None
    failures: int = 0
    rollback_on_failure: bool = False
    total: int = 0  # the instance count when it ended
    ready: int = 0  # new instances ready when it ended


class ServiceRec(msgspec.Struct, kw_only=True):
    """What is persisted of a service."""

    name: str
    version: str
    versions: list[Version]
    instances: int
    created_at: str
    dependencies: list[str] = []
    stopped: bool = False
    removing: bool = False
    deployment: DeploymentRec | None = None
    history: list[DeploymentRec] = []
    crashes: int = 0  # consecutive crashes (restart backoff)
    backoff_until: float = 0.0  # epoch seconds before which nothing is launched
    next_version: int = 1
    deployments: int = 0  # deployments started so far (numbers their ids)
    message: str | None = None

    def spec_of(self, rec: TaskRecord) -> ServiceSpec:
        """The spec of the version an instance runs (the current one if that version was
        dropped from the kept history)."""
        try:
            return self.spec(rec.task.labels.get(VERSION_LABEL))
        except NotFoundError:
            return self.spec()

    def spec(self, version: str | None = None) -> ServiceSpec:
        wanted = version or self.version
        for v in self.versions:
            if v.id == wanted:
                return v.spec
        raise NotFoundError(f"service {self.name}: no version {wanted!r}")


def _now() -> float:
    return time.time()


def normalize_name(name: str) -> str:
    """A service id without its leading slash (``/shop/web`` → ``shop/web``)."""
    return name.strip("/")


def flatten(groups: Iterable[GroupSpec], services: Iterable[ServiceSpec]) -> list[ServiceSpec]:
    """Every service of the request with group dependencies pushed down to its services and
    group ids in dependencies expanded to the services of that group."""
    out: list[ServiceSpec] = [msgspec.structs.replace(s) for s in services]

    def walk(group: GroupSpec, inherited: list[str]) -> None:
        deps = inherited + list(group.dependencies)
        for svc in group.services:
            out.append(
                msgspec.structs.replace(
                    svc, dependencies=list(dict.fromkeys(svc.dependencies + deps))
                )
            )
        for child in group.groups:
            walk(child, deps)

    for group in groups:
        walk(group, [])
    names = {normalize_name(s.name) for s in out}
    for svc in out:
        svc.name = normalize_name(svc.name)
        expanded: list[str] = []
        for raw in svc.dependencies:
            dep = normalize_name(raw)
            members = [n for n in names if n == dep or n.startswith(dep + "/")]
            expanded.extend(members or [dep])
        svc.dependencies = [d for d in dict.fromkeys(expanded) if d != svc.name]
    return out


def _config_of(spec: ServiceSpec) -> bytes:
    """The spec without the instance count: a change here is a new version."""
    return msgspec.json.encode(msgspec.structs.replace(spec, instances=0, version=None))


class ServiceController:
    """Keeps every service at its desired state (see the module docstring)."""

    def __init__(self, engine: Engine, announcer: Any = None) -> None:
        self.engine = engine
        self.announcer = announcer
        self.services: dict[str, ServiceRec] = {}
        self.members: dict[str, set[str]] = {}  # service -> ids of its active instances
        self.ready: set[str] = set()  # readiness checks passed
        self.killing: set[str] = set()  # killed by the controller (not a crash)
        self.health_killed: set[str] = set()  # killed for failing health checks (a crash)
        self.announced: set[str] = set()
        # instances on agents in maintenance that cannot move (no other agent may take
        # them): task id -> why (dshell_local.maintenance reports it as the drain's blocker)
        self.blocked: dict[str, str] = {}
        self._seen: dict[str, TaskState] = {}
        self._watched: set[str] = set()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._changed: dict[str, list[asyncio.Future[None]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._stable: dict[str, asyncio.TimerHandle] = {}
        self._no_volume: dict[str, str] = {}  # why an instance's volume could not be made
        engine.volumes.on_freed.append(self._retry_volumes)
        self._loop_task: asyncio.Task[None] | None = None
        self.health: Any = None
        self.readiness: Any = None
        engine.observers.append(self._observe)

    # ---- start-up -------------------------------------------------------------------------

    def load(self) -> None:
        """Read the services and find their instances among the engine's active tasks."""
        for data in self.engine.store.services():
            rec = msgspec.json.decode(data, type=ServiceRec)
            self.services[rec.name] = rec
        for task_rec in self.engine.records.values():
            if task_rec.task.service is not None:
                self._observe(task_rec)
        self._dirty.update(self.services)

    def start(self) -> None:
        from .checks import HealthMonitor, ReadinessMonitor, executor_runner

        self.health = HealthMonitor(executor_runner(self.engine.executor), self._on_health)
        self.readiness = ReadinessMonitor(self._on_ready)
        for svc_name, ids in self.members.items():
            for task_id in ids:
                rec = self.engine.records.get(task_id)
                if rec is not None and rec.task.state is TaskState.RUNNING:
                    self._watch(svc_name, rec)
        self._loop_task = asyncio.ensure_future(self._loop())
        self._wake.set()

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for timer in [*self._timers.values(), *self._stable.values()]:
            timer.cancel()
        if self.health is not None:
            await self.health.close()
        if self.readiness is not None:
            await self.readiness.close()

    # ---- what the engine tells us ---------------------------------------------------------

    def _observe(self, rec: TaskRecord) -> None:
        """Every save of a service instance (called inside the engine's save)."""
        task = rec.task
        name = task.service
        if name is None:
            return
        before = self._seen.get(task.id)
        if before is task.state:
            return
        self._seen[task.id] = task.state
        if task.state.active:
            self.members.setdefault(name, set()).add(task.id)
            if task.state is TaskState.RUNNING and self.health is not None:
                self._watch(name, rec)
            elif task.state is TaskState.KILLING:
                self._unwatch(task.id)
        else:
            self._ended(name, rec)
        self.mark(name)

    def _ended(self, name: str, rec: TaskRecord) -> None:
        task = rec.task
        self._seen.pop(task.id, None)
        self.members.get(name, set()).discard(task.id)
        self.ready.discard(task.id)
        self._unwatch(task.id)
        self.blocked.pop(task.id, None)
        timer = self._stable.pop(task.id, None)
        if timer is not None:
            timer.cancel()
        expected = task.id in self.killing
        self.killing.discard(task.id)
        health_kill = task.id in self.health_killed
        self.health_killed.discard(task.id)
        svc = self.services.get(name)
        if svc is None or expected:
            return
        if task.reason in (REASON_KILLED, REASON_DRAINING, REASON_PREEMPTED) and not health_kill:
            return  # a user's kill, its agent's maintenance, a preemption: not a crash
        self._crashed(svc, task.labels.get(VERSION_LABEL), task.id)

    def _crashed(self, svc: ServiceRec, version: str | None, task_id: str) -> None:
        spec = svc.spec()
        svc.crashes += 1
        delay = self._delay(spec, svc.crashes)
        svc.backoff_until = _now() + delay
        dep = svc.deployment
        if dep is not None and dep.state in ACTIVE_DEPLOYMENT and version == dep.to_version:
            dep.failures += 1
            limit = svc.spec(dep.to_version).upgrade_strategy.max_failures
            if dep.failures >= limit:
                self._finish(svc, "FAILED", f"{dep.failures} instances of {dep.to_version} failed")
        log.info("service %s: instance %s crashed; next launch in %.1fs", svc.name, task_id, delay)
        self._save(svc)

    @staticmethod
    def _delay(spec: ServiceSpec, crashes: int) -> float:
        """The restart delay after ``crashes`` consecutive crashes (Marathon's backoff)."""
        back = spec.backoff
        return float(min(back.seconds * back.factor ** (crashes - 1), back.max_launch_delay))

    def _on_health(self, task_id: str, status: Any) -> None:
        rec = self.engine.records.get(task_id)
        if rec is None or rec.task.service is None:
            return
        health = None if status.healthy is None else HEALTHY if status.healthy else UNHEALTHY
        if rec.task.health != health:
            rec.task.health = health
            self.engine.save(rec)
            self.engine.spawn_bg(self.engine.store.commit())
        if status.kill and task_id not in self.health_killed and rec.task.state.active:
            svc = self.services.get(rec.task.service)
            if svc is not None:
                self.health_killed.add(task_id)
                self._kill(svc, rec, f"failed {status.consecutive_failures} health checks")
        self.mark(rec.task.service)

    def _on_ready(self, task_id: str, ready: bool) -> None:
        rec = self.engine.records.get(task_id)
        if rec is None or rec.task.service is None:
            return
        if ready:
            self.ready.add(task_id)
        else:
            self.ready.discard(task_id)
        self.mark(rec.task.service)

    def _watch(self, name: str, rec: TaskRecord) -> None:
        svc = self.services.get(name)
        if svc is None or rec.task.id in self._watched or self.health is None:
            return
        spec = svc.spec_of(rec)
        self._watched.add(rec.task.id)
        from .checks import CheckConfigError, HealthStatus, target_of

        target = target_of(rec.task)
        if spec.health_checks:
            initial = None
            if rec.task.health is not None:  # persisted: a healthy instance stays healthy
                initial = HealthStatus(
                    healthy=rec.task.health == HEALTHY,
                    consecutive_failures=0,
                    kill=False,
                    last_check_at=None,
                    message="as before the engine restarted",
                )
            try:
                self.health.watch(target, spec.health_checks, None, initial)
            except CheckConfigError as exc:
                log.error("service %s: instance %s: %s", name, rec.task.id, exc)
        if spec.readiness_checks:
            try:
                self.readiness.watch(target, spec.readiness_checks)
            except CheckConfigError as exc:
                log.error("service %s: instance %s: %s", name, rec.task.id, exc)
        self._arm_stable(svc, rec, spec)

    def _unwatch(self, task_id: str) -> None:
        if task_id in self._watched:
            self._watched.discard(task_id)
            self.health.unwatch(task_id)
            self.readiness.unwatch(task_id)

    def _arm_stable(self, svc: ServiceRec, rec: TaskRecord, spec: ServiceSpec) -> None:
        """Reset the crash counter once this instance has run ``stable_after`` seconds."""
        task_id = rec.task.id

        def stable() -> None:
            self._stable.pop(task_id, None)
            live = self.engine.records.get(task_id)
            if live is None or live.task.state is not TaskState.RUNNING:
                return
            if spec.health_checks and live.task.health != HEALTHY:
                return
            if svc.crashes:
                svc.crashes, svc.backoff_until = 0, 0.0
                self._save(svc)
                self.engine.spawn_bg(self.engine.store.commit())

        loop = asyncio.get_running_loop()
        self._stable[task_id] = loop.call_later(spec.backoff.stable_after, stable)

    def mark(self, name: str) -> None:
        """Reconcile ``name`` soon."""
        self._dirty.add(name)
        self._wake.set()

    def _retry_volumes(self) -> None:
        """A volume's disk is back: services waiting for room for theirs try again."""
        for name in list(self._no_volume):
            self.mark(name)

    # ---- the loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = sorted(self._dirty), set()
            for name in dirty:
                try:
                    await self._reconcile(name)
                except (UsageError, ConflictError, OSError) as exc:
                    svc = self.services.get(name)
                    if svc is not None:
                        svc.message = f"cannot launch: {exc}"
                        if isinstance(exc, UsageError) and svc.deployment is not None:
                            self._finish(svc, "FAILED", svc.message)  # it can never launch
                        self._save(svc)
                    log.warning("service %s: %s", name, exc)
                except Exception:
                    log.exception("service %s: reconciliation failed", name)
                self._notify(name)
                for other in self.services.values():  # dependants may start (or stop) now
                    if name in other.dependencies and other.name not in dirty:
                        self._dirty.add(other.name)
                        self._wake.set()

    def _notify(self, name: str) -> None:
        for fut in self._changed.pop(name, []):
            if not fut.done():
                fut.set_result(None)

    # ---- instances and their states -------------------------------------------------------

    def _instances(self, name: str) -> list[TaskRecord]:
        out = []
        for task_id in self.members.get(name, ()):
            rec = self.engine.records.get(task_id)
            if rec is not None:
                out.append(rec)
        return sorted(out, key=lambda r: (r.task.instance or 0, r.task.id))

    def _dying(self, rec: TaskRecord) -> bool:
        return rec.task.id in self.killing or rec.task.state is TaskState.KILLING

    def is_ready(self, svc: ServiceRec, rec: TaskRecord) -> bool:
        """Running, healthy if it has health checks, ready if it has readiness checks."""
        task = rec.task
        if task.state is not TaskState.RUNNING or self._dying(rec):
            return False
        spec = svc.spec_of(rec)
        if spec.health_checks and task.health != HEALTHY:
            return False
        return not (spec.readiness_checks and task.id not in self.ready)

    def _healthy_service(self, name: str) -> bool:
        svc = self.services.get(name)
        if svc is None or svc.stopped:
            return False
        if svc.deployment is not None and svc.deployment.state in ACTIVE_DEPLOYMENT:
            return False
        ready = [r for r in self._instances(name) if self.is_ready(svc, r)]
        return len(ready) >= svc.instances

    # ---- reconciliation -------------------------------------------------------------------

    async def _reconcile(self, name: str) -> None:
        svc = self.services.get(name)
        if svc is None:
            return
        live = self._instances(name)
        if svc.stopped:
            await self._reconcile_stopped(svc, live)
            return
        waiting_on = [d for d in svc.dependencies if not self._healthy_service(d)]
        alive = [r for r in live if not self._dying(r)]
        launches: list[tuple[str, int]] = []  # (version, instance index)
        kills: list[TaskRecord] = []
        dep = svc.deployment
        n = svc.instances
        if dep is not None and dep.state == "PAUSED":
            pass
        elif dep is not None and dep.state == "RUNNING":
            launches, kills = self._rolling(svc, dep.to_version, live, alive)
        elif any(r.task.agent_id in self.engine.allocator.unavailable for r in alive):
            launches, kills = self._rolling(svc, svc.version, live, alive)  # a drain: move
        elif len(alive) < n:
            launches = [(svc.version, i) for i in self._free_indices(alive, n - len(alive))]
        elif len(alive) > n:
            kills = self._surplus(svc, alive, len(alive) - n)
        await self._announce(svc, live)
        away = self.engine.allocator.unavailable
        for rec in kills:
            if rec.task.agent_id in away:
                self._kill(svc, rec, f"agent {rec.task.agent_id} in maintenance", drained=True)
            else:
                self._kill(svc, rec, "surplus" if dep is None else f"deployment {dep.id}")
        if kills:
            self.engine.crash.hit("svc_after_kill")
        message = None
        if launches and waiting_on:
            message = "waiting for dependencies: " + ", ".join(waiting_on)
            launches = []
        delay = svc.backoff_until - _now()
        if launches and delay > 0:
            message = f"restart backoff: next launch in {delay:.1f}s"
            self._arm_timer(svc.name, delay)
            launches = []
        for version, index in launches:
            await self._launch(svc, version, index)
        if launches:
            self.engine.crash.hit("svc_after_launch")
        no_volume = self._no_volume.get(svc.name)
        svc.message = message or no_volume or self._placement_message(live)
        self._check_done(svc)
        self._save(svc)
        await self.engine.store.commit()

    def _placement_message(self, live: list[TaskRecord]) -> str | None:
        for rec in live:
            if rec.task.state is TaskState.STAGING and rec.task.message:
                return rec.task.message
        return None

    async def _reconcile_stopped(self, svc: ServiceRec, live: list[TaskRecord]) -> None:
        dependants = [
            other.name
            for other in self.services.values()
            if svc.name in other.dependencies and self.members.get(other.name)
        ]
        if dependants and live:
            svc.message = "stopping after its dependants: " + ", ".join(sorted(dependants))
        else:
            svc.message = None
            for rec in live:
                if not self._dying(rec):
                    self._kill(svc, rec, "service stopped")
        await self._announce(svc, live)
        if svc.removing and not live:
            self.engine.volumes.destroy_service(svc.name)  # Marathon: they go with the app
            del self.services[svc.name]
            self.members.pop(svc.name, None)
            self.engine.store.put_service(svc.name, None)
            for other in self.services.values():  # dependencies may now stop
                if svc.name in other.dependencies:
                    self.mark(other.name)
        else:
            self._save(svc)
        for other in self.services.values():
            if other.stopped and other.name in svc.dependencies:
                self.mark(other.name)
        await self.engine.store.commit()

    def _rolling(
        self,
        svc: ServiceRec,
        version: str,
        live: list[TaskRecord],
        alive: list[TaskRecord],
    ) -> tuple[list[tuple[str, int]], list[TaskRecord]]:
        """Replace the instances not of ``version`` (a deployment) or on an agent in
        maintenance (a drain) by instances of ``version`` elsewhere, under the upgrade
        strategy: never fewer than ⌈n·minimumHealthCapacity⌉ healthy."""
        spec = svc.spec(version)
        n = svc.instances
        strategy = spec.upgrade_strategy
        min_healthy = math.ceil(n * strategy.minimum_health_capacity - 1e-9)
        max_total = n + math.floor(n * strategy.maximum_over_capacity + 1e-9)
        if min_healthy == max_total and len(live) >= max_total and n > 0:
            max_total += 1  # Marathon: one extra instance, else nothing could ever move
        away = self.engine.allocator.unavailable
        new = [
            r
            for r in alive
            if r.task.labels.get(VERSION_LABEL) == version and r.task.agent_id not in away
        ]
        old = [r for r in alive if r not in new]
        stuck = self._stuck(svc, spec, old, n - len(new))
        old = [r for r in old if r not in stuck]
        ready_new = [r for r in new if self.is_ready(svc, r)]
        healthy_old = [r for r in old if self.is_ready(svc, r)]
        unhealthy_old = [r for r in old if not self.is_ready(svc, r)]
        kills: list[TaskRecord] = list(unhealthy_old)
        budget = len(healthy_old) + len(ready_new) - min_healthy
        budget += sum(1 for r in stuck if self.is_ready(svc, r))
        ordered = self._kill_order(spec, healthy_old)
        kills.extend(ordered[: max(0, budget)])
        if len(new) > n:  # scaled down during the deployment
            kills.extend(self._surplus(svc, new, len(new) - n))
        room = max_total - len(live)
        count = max(0, min(n - len(new) - len(stuck), room))
        launches = [(version, i) for i in self._free_indices(new + stuck, count)]
        return launches, kills

    def _stuck(
        self, svc: ServiceRec, spec: ServiceSpec, old: list[TaskRecord], missing: int
    ) -> list[TaskRecord]:
        """The instances on agents in maintenance that must stay because no agent may take
        their replacement (recorded in ``blocked`` with the reason)."""
        away = self.engine.allocator.unavailable
        evacuees = [r for r in old if r.task.agent_id in away]
        for r in evacuees:
            self.blocked.pop(r.task.id, None)
        if not evacuees or missing <= 0:
            return []
        from .evacuate import blocker

        why = blocker(self.engine, svc.name, spec)
        if why is None:
            return []
        stuck = self._kill_order(spec, evacuees)[::-1][:missing]  # those it would stop last
        for r in stuck:
            self.blocked[r.task.id] = f"service {svc.name} instance {r.task.id}: {why}"
        return stuck

    def _check_done(self, svc: ServiceRec) -> None:
        dep = svc.deployment
        if dep is None or dep.state != "RUNNING":
            return
        live = self._instances(svc.name)
        new_ready = [
            r
            for r in live
            if r.task.labels.get(VERSION_LABEL) == dep.to_version and self.is_ready(svc, r)
        ]
        old = [r for r in live if r.task.labels.get(VERSION_LABEL) != dep.to_version]
        if len(new_ready) >= svc.instances and not old and len(live) == svc.instances:
            self._finish(svc, "SUCCEEDED", None)

    def _finish(self, svc: ServiceRec, state: str, message: str | None) -> None:
        dep = svc.deployment
        if dep is None:
            return
        dep.state, dep.finished_at, dep.message = state, utcnow(), message
        dep.total = svc.instances
        if state == "SUCCEEDED":
            dep.ready = svc.instances
        else:
            dep.ready = self._ready_count(svc, dep.to_version)
        svc.history = [*svc.history, dep][-MAX_HISTORY:]
        svc.deployment = None
        log.info("service %s: deployment %s %s", svc.name, dep.id, state)
        if state == "FAILED" and dep.rollback_on_failure and dep.from_version:
            back = self._start_deployment(svc, dep.from_version, "rollback")
            back.message = f"rolling back after: {message}"

    @staticmethod
    def _free_indices(present: list[TaskRecord], count: int) -> list[int]:
        used = {r.task.instance for r in present}
        out: list[int] = []
        i = 0
        while len(out) < count:
            if i not in used:
                out.append(i)
            i += 1
        return out

    def _kill_order(self, spec: ServiceSpec, recs: list[TaskRecord]) -> list[TaskRecord]:
        oldest_first = sorted(recs, key=lambda r: (r.task.created_at or "", r.task.id))
        return oldest_first if spec.kill_selection == "OLDEST_FIRST" else oldest_first[::-1]

    def _surplus(self, svc: ServiceRec, recs: list[TaskRecord], count: int) -> list[TaskRecord]:
        unready = [r for r in recs if not self.is_ready(svc, r)]
        rest = self._kill_order(svc.spec(), [r for r in recs if self.is_ready(svc, r)])
        return (self._kill_order(svc.spec(), unready) + rest)[:count]

    def _arm_timer(self, name: str, delay: float) -> None:
        if name in self._timers:
            return

        def fire() -> None:
            self._timers.pop(name, None)
            self.mark(name)

        self._timers[name] = asyncio.get_running_loop().call_later(delay + 0.01, fire)

    # ---- actions --------------------------------------------------------------------------

    async def _launch(self, svc: ServiceRec, version: str, index: int) -> None:
        spec = svc.spec(version)
        labels = dict(spec.labels)
        labels.update({SERVICE_LABEL: svc.name, VERSION_LABEL: version, INSTANCE_LABEL: str(index)})
        command, shell = self._command_of(spec)
        try:  # per-instance persistent volumes: created at the first launch, then reused
            volumes = self.engine.volumes.for_instance(svc.name, spec, index)
        except DshellError as exc:
            log.warning("service %s: instance %d not launched: %s", svc.name, index, exc)
            self._no_volume[svc.name] = f"instance {index} waits for its volumes: {exc.message}"
            return
        self._no_volume.pop(svc.name, None)
        run = RunSpec(
            command=command,
            shell=shell,
            name=svc.name.replace("/", "."),
            resources=Resources(
                cpus=spec.resources.cpus, mem=spec.resources.mem, disk=spec.resources.disk
            ),
            env=dict(spec.env),
            ports=[p.name or "" for p in spec.ports],
            port_numbers=[p.number for p in spec.ports] if spec.require_ports else [],
            role=spec.role,
            labels=labels,
            constraints=list(spec.constraints),
            tier=spec.tier,
            priority=spec.priority,
            volumes=volumes,
        )
        tasks, _ = await self.engine.submit(run, templates=True)
        for task in tasks:
            log.info("service %s: launched %s (%s #%d)", svc.name, task.id, version, index)

    def _command_of(self, spec: ServiceSpec) -> tuple[list[str], bool]:
        """An instance's argv and shell flag. Processes (they win over ``command``) run under
        the Thermos runner, its spec inline in the argv (the sandbox does not exist before the
        launch; the engine renders templates in it); a single plain one is the command."""
        if thermos.needs_runner(spec.processes):
            return thermos.command(self._thermos_spec(spec)), False
        if spec.processes:
            return [spec.processes[0].cmdline], True
        return list(spec.command), spec.shell

    def _thermos_spec(self, spec: ServiceSpec) -> dict[str, Any]:
        """The runner's spec of a multi-process service; its finalization wait is the grace
        the engine gives the instance between SIGTERM and SIGKILL."""
        grace = spec.kill_grace_period
        return thermos.spec_data(
            spec.processes,
            spec.process_order,
            max_failures=spec.max_process_failures,
            max_concurrency=spec.max_concurrency,
            finalization_wait=self.engine.cfg.engine.kill_grace if grace is None else grace,
        )

    def _kill(self, svc: ServiceRec, rec: TaskRecord, why: str, drained: bool = False) -> None:
        task_id = rec.task.id
        if task_id not in self.health_killed:
            self.killing.add(task_id)
        self._unwatch(task_id)
        self.ready.discard(task_id)
        spec = svc.spec_of(rec)
        log.info("service %s: killing %s (%s)", svc.name, task_id, why)
        self.engine.spawn_bg(self._stop_instance(rec, spec, drained))

    async def _stop_instance(
        self, rec: TaskRecord, spec: ServiceSpec, drained: bool = False
    ) -> None:
        task_id = rec.task.id
        await self._withdraw(task_id)
        life = spec.lifecycle
        if life is not None and rec.task.state is TaskState.RUNNING:
            port = next((p.port for p in rec.task.ports if p.name == life.http_port_name), None)
            if port is not None:
                from .checks import graceful_shutdown

                exited = asyncio.Event()
                waiter = asyncio.ensure_future(self._exited(task_id, exited))
                try:
                    await graceful_shutdown("127.0.0.1", port, life, exited)
                finally:
                    waiter.cancel()
        cause = None
        if drained:  # moved off by a drain: its end says so
            cause = (REASON_DRAINING, f"moved off agent {rec.task.agent_id} (maintenance)")
        with contextlib.suppress(NotFoundError, ConflictError):
            await self.engine.kill(task_id, spec.kill_grace_period, cause)

    async def _exited(self, task_id: str, exited: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutExpired, NotFoundError):
            await self.engine.wait(task_id, None)
        exited.set()

    async def _announce(self, svc: ServiceRec, live: list[TaskRecord]) -> None:
        if self.announcer is None:
            return
        for rec in live:
            task = rec.task
            spec = svc.spec_of(rec)
            want = spec.announce is not None and self.is_ready(svc, rec) and not svc.stopped
            if want and task.id not in self.announced:
                assert spec.announce is not None
                ports = {p.name: p.port for p in task.ports if p.name}
                for alias, target in spec.announce.portmap.items():
                    if target in ports:
                        ports[alias] = ports[target]
                    elif target.isdigit():
                        ports[alias] = int(target)
                self.announced.add(task.id)
                await self.announcer.announce(
                    task.id,
                    role=spec.role or "root",
                    environment=spec.environment or "devel",
                    name=svc.name.rsplit("/", 1)[-1],
                    shard=task.instance or 0,
                    host=task.hostname or "127.0.0.1",
                    endpoints=ports,
                    primary=spec.announce.primary_port,
                    zk_path=spec.announce.zk_path,
                )
            elif not want and task.id in self.announced:
                await self._withdraw(task.id)

    async def _withdraw(self, task_id: str) -> None:
        if self.announcer is not None and task_id in self.announced:
            self.announced.discard(task_id)
            await self.announcer.withdraw(task_id)

    def _save(self, svc: ServiceRec) -> None:
        if svc.name in self.services:
            self.engine.store.put_service(svc.name, msgspec.json.encode(svc))

    # ---- deployments ----------------------------------------------------------------------

    def _new_version(self, svc: ServiceRec, spec: ServiceSpec, cause: str) -> str:
        vid = f"v{svc.next_version}"
        svc.next_version += 1
        svc.versions.append(Version(id=vid, created_at=utcnow(), cause=cause, spec=spec))
        if len(svc.versions) > MAX_VERSIONS:
            keep = {svc.version, vid}
            extra = len(svc.versions) - MAX_VERSIONS
            svc.versions = [v for i, v in enumerate(svc.versions) if v.id in keep or i >= extra]
        return vid

    def _start_deployment(self, svc: ServiceRec, to_version: str, cause: str) -> DeploymentRec:
        svc.deployments += 1
        dep = DeploymentRec(
            id=f"{svc.name.replace('/', '.')}-{svc.deployments}",
            to_version=to_version,
            from_version=svc.version,
            state="RUNNING",
            cause=cause,
            started_at=utcnow(),
        )
        svc.version = to_version
        svc.deployment = dep
        svc.crashes, svc.backoff_until = 0, 0.0
        return dep

    def _supersede(self, svc: ServiceRec, force: bool) -> None:
        dep = svc.deployment
        if dep is None or dep.state not in ACTIVE_DEPLOYMENT:
            return
        if not force:
            raise ConflictError(
                f"service {svc.name}: deployment {dep.id} is still {dep.state.lower()} "
                "(wait for it, `svc abort` it, or use --force)"
            )
        self._finish(svc, "ABORTED", "superseded by a newer deployment")

    def check_spec(self, spec: ServiceSpec, *, dry_run: bool = False) -> None:
        """What the local engine cannot run: refused (UsageError) before anything changes.
        A dry run plans persistent volumes instead of refusing them."""
        problem = self._spec_problem(spec, dry_run)
        if problem:
            raise UsageError(f"service {spec.name}: {problem}")

    def _spec_problem(self, spec: ServiceSpec, dry_run: bool = False) -> str | None:
        if not _NAME.match(spec.name):
            return "bad name (letters, digits, '.', '_', '-'; path segments joined by '/')"
        if not 0 <= spec.instances <= MAX_INSTANCES:
            return f"instances: must be 0 to {MAX_INSTANCES:,}"
        from .preemption import problem as tier_problem

        bad_tier = tier_problem(spec.tier, spec.priority)
        if bad_tier:
            return bad_tier
        if thermos.needs_runner(spec.processes):
            bad = thermos.problem(self._thermos_spec(spec))
            if bad:
                return f"processes: {bad}"
        elif not spec.command and not spec.processes:
            return "a command is required"
        if spec.require_ports:
            numbers = [p.number for p in spec.ports]
            if not all(numbers):
                return "require_ports: every port needs its number (the host port to use)"
            if not self.engine.allocator.offers_ports(numbers):
                return f"require_ports: no agent offers host port(s) {numbers}"
        if spec.volumes:
            problem = self.engine.volumes.problem(spec)
            if problem:
                return problem
        res = Resources(
            cpus=spec.resources.cpus,
            mem=spec.resources.mem,
            disk=spec.resources.disk,
            ports=len(spec.ports),
        )
        if spec.instances and not self.engine.allocator.fits_ever(res):
            return (
                f"no agent can ever hold an instance (cpus {res.cpus:g}, mem {res.mem:g} MiB, "
                f"disk {res.disk:g} MiB, {res.ports} ports)"
            )
        names = {p.name for p in spec.ports if p.name}
        for i, hc in enumerate(spec.health_checks):
            where = f"health_checks[{i}]"
            if hc.protocol == "COMMAND":
                if not hc.command:
                    return f"{where}: a COMMAND check needs a command"
            elif hc.port_name is not None and hc.port_name not in names:
                return f"{where}.port_name: {hc.port_name!r} is not a port of the service"
            elif hc.port_index is not None and not 0 <= hc.port_index < len(spec.ports):
                return f"{where}.port_index: {hc.port_index} is out of range"
            elif hc.port is None and hc.port_name is None and not spec.ports:
                return f"{where}: a {hc.protocol} check needs a port"
        for i, rc in enumerate(spec.readiness_checks):
            if rc.port_name not in names:
                return f"readiness_checks[{i}].port_name: {rc.port_name!r} is not a port"
        life = spec.lifecycle
        if life is not None and life.http_port_name not in names:
            return f"lifecycle.http_port_name: {life.http_port_name!r} is not a port"
        if spec.announce is not None and spec.announce.primary_port not in names:
            return f"announce.primary_port: {spec.announce.primary_port!r} is not a port"
        from . import constraints as placement

        try:
            for c in spec.constraints:
                placement.validate_constraint(c)
        except UsageError as exc:
            return f"constraints: {exc.message}"
        sites = placement.sites_of(self.engine.allocator.agents.values())
        never = placement.never_reason(placement.to_rules(spec.constraints), sites, res)
        return f"constraints: {never}" if never else None

    def _plan_one(self, spec: ServiceSpec, force: bool) -> PlanItem:
        svc = self.services.get(spec.name)
        n = spec.instances
        if svc is None:
            return PlanItem(
                service=spec.name, action="create", to_version="v1", instances=n, start=n
            )
        alive = [r for r in self._instances(spec.name) if not self._dying(r)]
        if _config_of(spec) != _config_of(svc.spec()):
            if (
                not force
                and svc.deployment is not None
                and svc.deployment.state in ACTIVE_DEPLOYMENT
            ):
                self._supersede(svc, force=False)
            return PlanItem(
                service=spec.name,
                action="update",
                from_version=svc.version,
                to_version=f"v{svc.next_version}",
                instances=n,
                start=n,
                stop=len(alive),
            )
        if n != svc.instances or svc.stopped:
            return PlanItem(
                service=spec.name,
                action="scale",
                from_version=svc.version,
                to_version=svc.version,
                instances=n,
                start=max(0, n - len(alive)),
                stop=max(0, len(alive) - n),
            )
        return PlanItem(
            service=spec.name,
            action="unchanged",
            from_version=svc.version,
            to_version=svc.version,
            instances=n,
        )

    async def deploy(self, req: DeployRequest) -> list[PlanItem]:
        """Validate everything, then create or update each service (or only plan)."""
        specs = flatten(req.groups, req.services)
        if not specs:
            raise UsageError("deploy: no service in the request")
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise UsageError(f"deploy: service {spec.name} appears twice")
            seen.add(spec.name)
            self.check_spec(spec, dry_run=req.dry_run)
        known = seen | set(self.services)
        for spec in specs:
            for dep in spec.dependencies:
                if dep not in known:
                    raise UsageError(f"service {spec.name}: unknown dependency {dep!r}")
        self._check_cycles(specs)
        plan = [self._plan_one(spec, req.force) for spec in specs]
        if req.dry_run:
            for item in plan:
                agents, reasons = self._placement_plan(
                    next(s for s in specs if s.name == item.service), item.start
                )
                item.placement = agents
                why = sorted({r for r in reasons if r})
                notes = ["no room now for some instances: " + "; ".join(why)] if why else []
                vols = next(s for s in specs if s.name == item.service).volumes
                if vols:
                    size = sum(v.size for v in vols)
                    notes.append(
                        f"{len(vols)} persistent volume(s), {size:g} MiB per instance: created "
                        "at each instance's first launch, on the agent it then stays on"
                    )
                item.message = "; ".join(notes) or None
            return plan
        for spec, item in zip(specs, plan, strict=True):
            self._apply(spec, item, req)
        await self.engine.store.commit()
        return plan

    def _placement_plan(
        self, spec: ServiceSpec, count: int
    ) -> tuple[list[str | None], list[str | None]]:
        """Where ``count`` new instances would go now, and why not where none can."""
        from .constraints import plan_placement

        placed = [r.task.agent_id for r in self._instances(spec.name) if r.task.agent_id]
        res = Resources(
            cpus=spec.resources.cpus,
            mem=spec.resources.mem,
            disk=spec.resources.disk,
            ports=len(spec.ports),
        )
        plan = plan_placement(self.engine.allocator, placed, spec.constraints, res, count)
        return list(plan.agents), list(plan.reasons)

    def _check_cycles(self, specs: list[ServiceSpec]) -> None:
        graph = {name: list(svc.dependencies) for name, svc in self.services.items()}
        graph.update({s.name: list(s.dependencies) for s in specs})
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = " -> ".join([*path[path.index(node) :], node])
                raise UsageError(f"deploy: dependency cycle: {cycle}")
            state[node] = 1
            for nxt in graph.get(node, []):
                visit(nxt, [*path, node])
            state[node] = 2

        for node in list(graph):
            visit(node, [])

    def _apply(self, spec: ServiceSpec, item: PlanItem, req: DeployRequest) -> None:
        svc = self.services.get(spec.name)
        if item.action == "create":
            svc = ServiceRec(
                name=spec.name,
                version="",
                versions=[],
                instances=spec.instances,
                created_at=utcnow(),
                dependencies=list(spec.dependencies),
            )
            vid = self._new_version(svc, spec, "deploy")
            self.services[spec.name] = svc
            dep = self._start_deployment(svc, vid, "deploy")
            dep.from_version = None
        elif svc is None or item.action == "unchanged":
            if svc is not None and svc.removing:
                svc.removing = False
            return
        elif item.action == "update":
            self._supersede(svc, req.force)
            vid = self._new_version(svc, spec, "deploy")
            dep = self._start_deployment(svc, vid, "deploy")
            svc.instances = spec.instances
            svc.dependencies = list(spec.dependencies)
        else:  # scale (or start again)
            self._supersede(svc, req.force)
            svc.instances = spec.instances
            svc.stopped = svc.removing = False
            dep = self._start_deployment(svc, svc.version, "scale")
        dep.rollback_on_failure = req.rollback_on_failure
        item.deployment = dep.id
        self._save(svc)
        self.mark(svc.name)

    # ---- verbs ----------------------------------------------------------------------------

    def get(self, name: str) -> ServiceRec:
        svc = self.services.get(normalize_name(name))
        if svc is None:
            raise NotFoundError(f"no service {name!r}")
        return svc

    async def call(self, verb: str, req: ServiceCall) -> Any:
        """One service verb (``svc scale``, ``restart``, ``stop`` …)."""
        handler: Callable[[ServiceCall], Any] | None = getattr(self, f"_verb_{verb}", None)
        if handler is None:
            raise NotFoundError(f"no service verb {verb!r}")
        result = handler(req)
        if asyncio.iscoroutine(result):
            result = await result
        await self.engine.store.commit()
        return result

    def _group(self, name: str) -> list[ServiceRec]:
        """The service ``name``, or every service of the group ``name``."""
        key = normalize_name(name)
        if key in self.services:
            return [self.services[key]]
        members = [s for n, s in self.services.items() if n.startswith(key + "/")]
        if not members:
            raise NotFoundError(f"no service or group {name!r}")
        return members

    def _verb_scale(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        if req.instances is None or not 0 <= req.instances <= MAX_INSTANCES:
            raise UsageError(f"scale: give a number of instances from 0 to {MAX_INSTANCES:,}")
        self._supersede(
            svc, req.force or (svc.deployment is not None and svc.deployment.cause == "scale")
        )
        svc.instances = req.instances
        self._start_deployment(svc, svc.version, "scale")
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_restart(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        self._supersede(svc, req.force)
        vid = self._new_version(svc, svc.spec(), "restart")
        self._start_deployment(svc, vid, "restart")
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_rollback(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        if req.to_version is not None:
            svc.spec(req.to_version)  # NotFoundError for an unknown version
            target = req.to_version
        else:
            ids = [v.id for v in svc.versions]
            here = ids.index(svc.version) if svc.version in ids else len(ids)
            if here == 0:
                raise ConflictError(f"service {svc.name}: no version before {svc.version}")
            target = ids[here - 1]
        if target == svc.version:
            raise ConflictError(f"service {svc.name} already runs {target}")
        self._supersede(svc, force=True)  # a rollback replaces the running deployment
        self._start_deployment(svc, target, "rollback")
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_pause(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        dep = svc.deployment
        if dep is None or dep.state != "RUNNING":
            raise ConflictError(f"service {svc.name} has no running deployment")
        dep.state = "PAUSED"
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_resume(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        dep = svc.deployment
        if dep is None or dep.state != "PAUSED":
            raise ConflictError(f"service {svc.name} has no paused deployment")
        dep.state = "RUNNING"
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_abort(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        dep = svc.deployment
        if dep is None:
            raise ConflictError(f"service {svc.name} has no deployment to abort")
        self._finish(svc, "ABORTED", "aborted by a user")
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_stop(self, req: ServiceCall) -> list[Service]:
        out = []
        for svc in self._group(req.name):
            if svc.deployment is not None:
                self._finish(svc, "ABORTED", "service stopped")
            svc.stopped = True
            self._save(svc)
            self.mark(svc.name)
            out.append(self.view(svc))
        return out

    def _verb_start(self, req: ServiceCall) -> list[Service]:
        out = []
        for svc in self._group(req.name):
            if svc.stopped:
                svc.stopped = svc.removing = False
                self._start_deployment(svc, svc.version, "scale")
                self._save(svc)
                self.mark(svc.name)
            out.append(self.view(svc))
        return out

    def _verb_rm(self, req: ServiceCall) -> list[Service]:
        group = self._group(req.name)
        names = {s.name for s in group}
        for other in self.services.values():
            if other.name not in names and names & set(other.dependencies):
                raise ConflictError(
                    f"cannot remove {', '.join(sorted(names))}: {other.name} depends on it"
                )
        out = []
        for svc in group:
            if svc.deployment is not None:
                self._finish(svc, "ABORTED", "service removed")
            svc.stopped = svc.removing = True
            self._save(svc)
            self.mark(svc.name)
            out.append(self.view(svc))
        return out

    def _verb_kill_scale(self, req: ServiceCall) -> Service:
        svc = self.get(req.name)
        if req.task_id is None or req.task_id not in self.members.get(svc.name, set()):
            raise NotFoundError(f"{req.task_id} is not an active instance of {svc.name}")
        rec = self.engine.records[req.task_id]
        svc.instances = max(0, svc.instances - 1)
        self._kill(svc, rec, "kill --scale")
        self._save(svc)
        self.mark(svc.name)
        return self.view(svc)

    def _verb_spec(self, req: ServiceCall) -> ServiceSpec:
        svc = self.get(req.name)
        spec = msgspec.structs.replace(svc.spec(req.to_version), instances=svc.instances)
        if not spec.name.startswith("/") and "/" in spec.name:
            spec.name = "/" + spec.name
        return spec

    def _verb_versions(self, req: ServiceCall) -> list[ServiceVersion]:
        svc = self.get(req.name)
        return [
            ServiceVersion(
                version=v.id, created_at=v.created_at, cause=v.cause, current=v.id == svc.version
            )
            for v in svc.versions
        ]

    def _verb_deployments(self, req: ServiceCall) -> list[Deployment]:
        svc = self.get(req.name)
        deps = [*svc.history, *([svc.deployment] if svc.deployment else [])]
        return [self._deployment_view(svc, d) for d in deps]

    def _verb_endpoints(self, req: ServiceCall) -> list[Endpoint]:
        svc = self.get(req.name)
        out = []
        for rec in self._instances(svc.name):
            task = rec.task
            if task.state is not TaskState.RUNNING:
                continue
            ready = self.is_ready(svc, rec)
            for i, p in enumerate(task.ports):
                out.append(
                    Endpoint(
                        service=svc.name,
                        task_id=task.id,
                        instance=task.instance or 0,
                        port_name=p.name or str(i),
                        host=task.hostname or "127.0.0.1",
                        port=p.port,
                        ready=ready,
                    )
                )
        return out

    def _verb_status(self, req: ServiceCall) -> Service:
        return self.view(self.get(req.name))

    async def _verb_wait(self, req: ServiceCall) -> Service:
        name = normalize_name(req.name)
        deadline = None if req.timeout is None else time.monotonic() + req.timeout
        while True:
            # the service, or every service of the group ``name``
            group = [s for n, s in self.services.items() if n == name or n.startswith(name + "/")]
            if not group:
                if req.until == "removed":
                    return Service(name=name, state="REMOVED", instances=0)
                raise NotFoundError(f"no service {req.name!r}")
            pending = [s for s in group if not self._condition(s, req.until)]
            if not pending:
                return self.view(group[0])
            svc = pending[0]
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._changed.setdefault(svc.name, []).append(fut)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutExpired(
                    f"service {name} not {req.until} after {req.timeout:g}s: {self._progress(svc)}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, left)

    def _condition(self, svc: ServiceRec, until: str) -> bool:
        live = self._instances(svc.name)
        if until == "deployed":
            return svc.deployment is None
        if until == "healthy":
            return self._healthy_service(svc.name)
        if until == "stopped":
            return svc.stopped and not live
        if until == "removed":
            return False
        raise UsageError(f"wait: unknown condition {until!r} (deployed, healthy, stopped, removed)")

    def _progress(self, svc: ServiceRec) -> str:
        live = self._instances(svc.name)
        ready = sum(1 for r in live if self.is_ready(svc, r))
        text = f"{ready}/{svc.instances} ready, {len(live)} alive"
        if svc.deployment is not None:
            text += f", deployment {svc.deployment.id} {svc.deployment.state}"
        if svc.message:
            text += f" ({svc.message})"
        return text

    # ---- views ----------------------------------------------------------------------------

    def _ready_count(self, svc: ServiceRec, version: str) -> int:
        return sum(
            1
            for r in self._instances(svc.name)
            if r.task.labels.get(VERSION_LABEL) == version and self.is_ready(svc, r)
        )

    def _deployment_view(self, svc: ServiceRec, dep: DeploymentRec) -> Deployment:
        active = dep.state in ACTIVE_DEPLOYMENT
        total = svc.instances if active else dep.total
        step = min(self._ready_count(svc, dep.to_version), total) if active else dep.ready
        return Deployment(
            id=dep.id,
            service=svc.name,
            version=dep.to_version,
            from_version=dep.from_version,
            cause=dep.cause,
            state=dep.state,
            step=step,
            total_steps=total,
            failures=dep.failures,
            started_at=dep.started_at,
            finished_at=dep.finished_at,
            message=dep.message,
        )

    def view(self, svc: ServiceRec) -> Service:
        spec = svc.spec()
        live = self._instances(svc.name)
        members = [
            ServiceInstance(
                task_id=r.task.id,
                instance=r.task.instance or 0,
                state=r.task.state.value,
                version=r.task.labels.get(VERSION_LABEL),
                agent_id=r.task.agent_id,
                hostname=r.task.hostname,
                ports=list(r.task.ports),
                health=r.task.health,
                ready=self.is_ready(svc, r),
                started_at=r.task.started_at,
            )
            for r in live
        ]
        if svc.stopped:
            state = "REMOVING" if svc.removing else "STOPPED"
        elif svc.deployment is not None:
            state = "DEPLOYING" if svc.deployment.state == "RUNNING" else "PAUSED"
        elif svc.message:
            state = "WAITING"
        else:
            state = "RUNNING"
        return Service(
            name=svc.name,
            backend="local",
            state=state,
            role=spec.role,
            instances=svc.instances,
            running=sum(1 for r in live if r.task.state is TaskState.RUNNING),
            healthy=sum(1 for m in members if m.ready),
            version=svc.version,
            command=list(spec.command),
            resources=Resources(
                cpus=spec.resources.cpus,
                mem=spec.resources.mem,
                disk=spec.resources.disk,
                ports=len(spec.ports),
            ),
            labels=dict(spec.labels),
            health_checks=[
                HealthCheck(
                    protocol=h.protocol,
                    command=h.command,
                    path=h.path or "/",
                    port_name=h.port_name,
                    port_index=h.port_index,
                    port=h.port,
                    delay=h.delay,
                    interval=h.interval,
                    timeout=h.timeout,
                    consecutive_failures=h.max_consecutive_failures,
                    grace_period=h.grace_period,
                )
                for h in spec.health_checks
            ],
            constraints=list(spec.constraints),
            deployment=self._deployment_view(svc, svc.deployment) if svc.deployment else None,
            tasks=[m.task_id for m in members],
            members=members,
            message=svc.message,
            crashes=svc.crashes,
            backoff_delay=self._delay(spec, svc.crashes) if svc.crashes else None,
        )

    def list(self) -> list[Service]:
        return [self.view(s) for s in self.services.values()]
