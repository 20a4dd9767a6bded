"""Agent maintenance on the embedded engine: drains, maintenance windows and attribute changes.

The Mesos operator API's vocabulary (DRAIN_AGENT with ``max_grace_period``, maintenance
schedules of windows per machine, agents UP / DRAINING / DRAINED / DOWN), for the engine's
logical agents. Each agent's admin record (its state, the drain's grace, its attribute changes
and its windows) persists in the engine's database (table ``agents``), so a restart resumes a
drain, keeps an agent DOWN and keeps its attributes.

* **drain**: the agent turns DRAINING at once and the allocator offers it to nobody (a task
  waiting for room says so). Service instances there are moved by the services controller
  under their upgrade strategy: a replacement is started elsewhere and the old instance is
  killed only while ⌈n·minimumHealthCapacity⌉ instances stay healthy; an instance that no
  other agent may take (its constraints) stays, and the drain reports it as blocked. Every
  other task (plain tasks, batch runs) is killed at once: SIGTERM, then SIGKILL after its own
  kill grace period or the drain's ``max_grace`` if that is shorter (Mesos semantics). A batch
  run killed so is run again elsewhere by the jobs controller, not counted as a retry. When
  nothing runs on the agent any more it is DRAINED. ``up`` returns it to UP (a drain in
  progress stops; kills already sent are not taken back).
* **windows**: ``[start, start + duration)`` on the engine's clock. An agent is drained
  ``lead`` seconds before its window starts (``[engine] maintenance_lead``, default 600 s,
  never less than the engine's kill grace + 30 s), is DOWN during the window (anything left is
  killed at its start, with no grace) and UP again after it.
* **attributes**: set or removed per agent over the configured ones; new placements see them
  (the tasks already placed stay where they are).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from dshell.errors import ConflictError, DshellError, NotFoundError, UsageError
from dshell.maintenance import MAX_WINDOW, attribute_problem, rfc3339
from dshell.model import Agent, AgentDrain, MaintenanceWindow

from . import constraints as cons
from .batch import JOB_LABEL
from .maintapi import AttributesRequest, CancelRequest, DrainRequest, ScheduleRequest
from .state import StoreError
from .tasks import REASON_DRAINING, TaskRecord, utcnow

if TYPE_CHECKING:
    from .batch import JobController
    from .engine import Engine
    from .services import ServiceController

log = logging.getLogger(__name__)

UP, DRAINING, DRAINED, DOWN = "UP", "DRAINING", "DRAINED", "DOWN"
MAX_SLEEP = 30.0
BLOCKED_RECHECK = 1.0  # seconds between re-evaluations of instances a drain could not move
MARGIN = 30.0  # the lead time is at least the engine's kill grace plus this


class Window(msgspec.Struct, kw_only=True):
    id: int
    start: float  # the engine clock's epoch seconds
    duration: float


class AgentAdmin(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What is persisted of an agent's administration."""

    id: str
    mode: str = UP
    reason: str | None = None
    since: str | None = None
    max_grace: float | None = None
    window: int | None = None  # the window that drained it or took it down
    set_attrs: dict[str, str] = {}
    unset_attrs: list[str] = []
    windows: list[Window] = []
    next_window: int = 1


class MaintenanceController:
    """Drains, windows and attribute changes of the engine's agents (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        services: ServiceController | None,
        jobs: JobController | None,
        clock: Callable[[], float] = time.time,
        max_sleep: float = MAX_SLEEP,
    ) -> None:
        self.engine = engine
        self.services = services
        self.jobs = jobs
        self.clock = clock
        self.max_sleep = max_sleep
        kill_grace = engine.cfg.engine.kill_grace
        self.lead = max(engine.cfg.engine.maintenance_lead, kill_grace + MARGIN)
        self.admins: dict[str, AgentAdmin] = {}
        self._configured = {a.id: dict(a.attributes) for a in engine.cfg.agents}
        self._killed: set[tuple[str, str]] = set()  # (task, mode) kills already sent
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._rechecked = 0.0

    # ---- start-up -------------------------------------------------------------------------

    def load(self) -> None:
        """Read the admin records and apply them (before recovery hands out placements)."""
        for data in self.engine.store.agents():
            adm = msgspec.json.decode(data, type=AgentAdmin)
            if adm.id in self.engine.allocator.agents:
                self.admins[adm.id] = adm
            else:
                log.warning("agent %s is no longer configured: its admin record is ignored", adm.id)
        for adm in self.admins.values():
            self._apply(adm)

    def start(self) -> None:
        self._loop_task = asyncio.ensure_future(self._loop())
        self._wake.set()

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    # ---- state ----------------------------------------------------------------------------

    def admin(self, agent_id: str) -> AgentAdmin:
        """The record of a configured agent (NotFoundError naming the agents otherwise)."""
        if agent_id not in self.engine.allocator.agents:
            known = ", ".join(sorted(self.engine.allocator.agents))
            raise NotFoundError(f"no agent {agent_id!r} (agents: {known})")
        return self.admins.setdefault(agent_id, AgentAdmin(id=agent_id))

    def attributes_of(self, adm: AgentAdmin) -> dict[str, str]:
        attrs = dict(self._configured.get(adm.id, {}))
        for name in adm.unset_attrs:
            attrs.pop(name, None)
        attrs.update(adm.set_attrs)
        return attrs

    def _apply(self, adm: AgentAdmin) -> None:
        """Make the allocator and the framework see the record."""
        alloc = self.engine.allocator
        if adm.mode == UP:
            alloc.unavailable.pop(adm.id, None)
        else:
            alloc.unavailable[adm.id] = f"{adm.mode} (maintenance: no new placements)"
        attrs = self.attributes_of(adm)
        if attrs != alloc.agents[adm.id].spec.attributes:
            alloc.set_attributes(adm.id, attrs)
            self.engine.framework.set_sites(cons.sites_of(alloc.agents.values()))

    def _save(self, adm: AgentAdmin) -> None:
        self.engine.store.put_agent(adm.id, msgspec.json.encode(adm))

    def _set_mode(self, adm: AgentAdmin, mode: str, reason: str | None) -> None:
        log.info("agent %s: %s -> %s (%s)", adm.id, adm.mode, mode, reason or "-")
        adm.mode, adm.reason, adm.since = mode, reason, utcnow()
        if mode == UP:
            adm.max_grace = adm.window = None
        self._apply(adm)
        self._save(adm)
        self._mark_services(adm.id)
        self.engine.request_cycle()  # waiting tasks may go there now (or say why not)
        self._wake.set()

    def _mark_services(self, agent_id: str | None) -> None:
        """Have the services controller look again at the services that run on the agent
        (``None``: at those with instances a drain could not move)."""
        if self.services is None:
            return
        names: set[str] = set()
        if agent_id is not None:
            for task_id in self.engine.allocator.agents[agent_id].tasks:
                rec = self.engine.records.get(task_id)
                if rec is not None and rec.task.service:
                    names.add(rec.task.service)
        for task_id in self.services.blocked:
            rec = self.engine.records.get(task_id)
            if rec is not None and rec.task.service:
                names.add(rec.task.service)
        for name in sorted(names):
            self.services.mark(name)

    # ---- verbs ----------------------------------------------------------------------------

    def drain(self, req: DrainRequest) -> Agent:
        adm = self.admin(req.agent)
        if req.max_grace is not None and not (0 <= req.max_grace < math.inf):
            raise UsageError(f"drain: --grace must be 0 or more seconds, not {req.max_grace:g}")
        if adm.mode == DOWN:
            raise ConflictError(f"agent {adm.id} is DOWN ({adm.reason}); `nodes up` ends it")
        adm.max_grace = req.max_grace
        if adm.mode == UP:
            adm.window = None
            self._set_mode(adm, DRAINING, req.reason or "drained by dshell")
        else:  # drained again: a new grace (a shorter one applies to the kills sent)
            adm.reason = req.reason or adm.reason
            self._killed = {k for k in self._killed if k[1] != DRAINING}
            self._save(adm)
        self._progress(adm)
        return self.view(adm.id)

    def up(self, agent: str) -> Agent:
        adm = self.admin(agent)
        if adm.window is not None:  # ends (cancels) the window that took it out of service
            adm.windows = [w for w in adm.windows if w.id != adm.window]
        if adm.mode != UP:
            self._set_mode(adm, UP, None)
        if self.services is not None:  # what could not leave it may stay now
            for task_id in self.engine.allocator.agents[adm.id].tasks:
                self.services.blocked.pop(task_id, None)
        self._mark_services(None)
        return self.view(adm.id)

    def set_attributes(self, req: AttributesRequest) -> Agent:
        adm = self.admin(req.agent)
        if not req.set and not req.unset:
            raise UsageError("nodes attr: nothing to change")
        for name, value in req.set.items():
            if problem := attribute_problem(name, value):
                raise UsageError(f"nodes attr: {problem}")
        current = self.attributes_of(adm)
        for name in req.unset:
            if problem := attribute_problem(name):
                raise UsageError(f"nodes attr: {problem}")
            if name not in current:
                raise UsageError(f"nodes attr: agent {adm.id} has no attribute {name!r}")
            adm.set_attrs.pop(name, None)
            if name in self._configured.get(adm.id, {}) and name not in adm.unset_attrs:
                adm.unset_attrs.append(name)
        for name, value in req.set.items():
            adm.set_attrs[name] = value
            if name in adm.unset_attrs:
                adm.unset_attrs.remove(name)
        self._apply(adm)
        self._save(adm)
        self._mark_services(None)
        self.engine.request_cycle()  # tasks waiting for such an agent may fit now
        return self.view(adm.id)

    def schedule(self, req: ScheduleRequest) -> MaintenanceWindow:
        adm = self.admin(req.agent)
        if not 0 < req.duration <= MAX_WINDOW:
            raise UsageError(f"maint schedule: bad duration {req.duration:g}s (0 < D ≤ 366d)")
        if (req.start is None) == (req.start_in is None):
            raise UsageError("maint schedule: give a start time or an offset from now")
        now = self.clock()
        start = req.start if req.start is not None else now + (req.start_in or 0.0)
        if not math.isfinite(start) or (req.start_in is not None and req.start_in < 0):
            raise UsageError("maint schedule: bad start time")
        if start + req.duration <= now:
            raise UsageError(f"maint schedule: the window ends in the past ({rfc3339(now)})")
        for w in adm.windows:
            if start < w.start + w.duration and w.start < start + req.duration:
                raise ConflictError(
                    f"agent {adm.id}: overlaps window {w.id} "
                    f"({rfc3339(w.start)} to {rfc3339(w.start + w.duration)})"
                )
        window = Window(id=adm.next_window, start=start, duration=req.duration)
        adm.next_window += 1
        adm.windows = sorted([*adm.windows, window], key=lambda w: w.start)
        self._save(adm)
        self._wake.set()
        return self._window_view(adm, window)

    def cancel(self, req: CancelRequest) -> list[MaintenanceWindow]:
        adm = self.admin(req.agent)
        if not adm.windows:
            raise NotFoundError(f"agent {adm.id} has no maintenance window")
        gone = list(adm.windows) if req.all else adm.windows[:1]
        views = [self._window_view(adm, w) for w in gone]
        for v in views:
            v.state = "CANCELLED"
        adm.windows = [w for w in adm.windows if w not in gone]
        if adm.window in {w.id for w in gone}:
            self._set_mode(adm, UP, None)  # it was out of service for that window only
        self._save(adm)
        return views

    # ---- views ----------------------------------------------------------------------------

    def view(self, agent_id: str) -> Agent:
        """One agent as `nodes` shows it (without usage: a verb's answer)."""
        agents = self.engine.allocator.agent_views({})
        return next(a for a in self.decorate(agents) if a.id == agent_id)

    def decorate(self, agents: list[Agent]) -> list[Agent]:
        """The allocator's agent views with their maintenance state."""
        blocked = self.services.blocked if self.services is not None else {}
        for agent in agents:
            adm = self.admins.get(agent.id)
            if adm is None or adm.mode == UP:
                continue
            agent.state, agent.reason = adm.mode, adm.reason
            if adm.mode in (DRAINING, DRAINED):
                on = self.engine.allocator.agents[agent.id].tasks
                stuck = [why for task_id, why in blocked.items() if task_id in on]
                agent.drain = AgentDrain(
                    started_at=adm.since or "",
                    max_grace=adm.max_grace,
                    tasks=len(on),
                    blocked=stuck,
                    window=adm.window,
                )
                if stuck:
                    agent.reason = f"{adm.reason}; blocked: {stuck[0]}"
        return agents

    def _window_view(self, adm: AgentAdmin, w: Window) -> MaintenanceWindow:
        now = self.clock()
        if w.start <= now:
            state = "ACTIVE"
        elif adm.window == w.id:
            state = "DRAINING"
        else:
            state = "SCHEDULED"
        spec = self.engine.allocator.agents[adm.id].spec
        return MaintenanceWindow(
            agent=adm.id,
            id=w.id,
            start=rfc3339(w.start),
            end=rfc3339(w.start + w.duration),
            duration=w.duration,
            state=state,
            agent_state=adm.mode,
            hostname=spec.hostname,
        )

    def windows(self) -> list[MaintenanceWindow]:
        out = [self._window_view(a, w) for a in self.admins.values() for w in a.windows]
        return sorted(out, key=lambda v: (v.start, v.agent))

    # ---- the loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                self._tick()
                await self.engine.store.commit()
            except (DshellError, OSError, StoreError, sqlite3.Error) as exc:
                log.warning("maintenance: %s", exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_for())

    def _sleep_for(self) -> float:
        now = self.clock()
        marks = [
            t
            for adm in self.admins.values()
            for w in adm.windows
            for t in (w.start - self.lead, w.start, w.start + w.duration)
            if t > now
        ]
        busy = any(a.mode in (DRAINING, DOWN) for a in self.admins.values())
        cap = BLOCKED_RECHECK if busy else self.max_sleep
        return max(0.01, min([cap, *(t - now for t in marks)]))

    def _tick(self) -> None:
        now = self.clock()
        for adm in list(self.admins.values()):
            self._windows(adm, now)
            if adm.mode in (DRAINING, DOWN):
                self._progress(adm)
        blocked = self.services is not None and self.services.blocked
        if blocked and time.monotonic() - self._rechecked >= BLOCKED_RECHECK:
            self._rechecked = time.monotonic()
            self._mark_services(None)

    def _windows(self, adm: AgentAdmin, now: float) -> None:
        ended = [w for w in adm.windows if w.start + w.duration <= now]
        if ended:
            adm.windows = [w for w in adm.windows if w not in ended]
            if adm.window in {w.id for w in ended}:
                self._set_mode(adm, UP, None)
            self._save(adm)
        active = next((w for w in adm.windows if w.start <= now), None)
        if active is not None:
            if adm.mode != DOWN:
                adm.window = active.id
                end = rfc3339(active.start + active.duration)
                self._set_mode(adm, DOWN, f"maintenance window {active.id} until {end}")
            return
        soon = next((w for w in adm.windows if w.start - self.lead <= now), None)
        if soon is not None and adm.mode == UP:
            adm.window, adm.max_grace = soon.id, None
            self._set_mode(adm, DRAINING, f"maintenance window {soon.id} at {rfc3339(soon.start)}")

    def _progress(self, adm: AgentAdmin) -> None:
        """Kill what must go (once per task and state); DRAINED once nothing is left."""
        agent = self.engine.allocator.agents[adm.id]
        for task_id in sorted(agent.tasks):
            rec = self.engine.records.get(task_id)
            if rec is None or (task_id, adm.mode) in self._killed:
                continue
            if adm.mode == DRAINING and rec.task.service is not None:
                continue  # the services controller moves it
            self._killed.add((task_id, adm.mode))
            grace = 0.0 if adm.mode == DOWN else self._grace(rec, adm.max_grace)
            what = "went DOWN for maintenance" if adm.mode == DOWN else "was drained"
            self.engine.spawn_bg(self._kill(task_id, grace, f"agent {adm.id} {what}"))
        live = {t for t, _ in self._killed if t in self.engine.records}
        self._killed = {k for k in self._killed if k[0] in live}
        if adm.mode == DRAINING and not agent.tasks:
            self._set_mode(adm, DRAINED, adm.reason)

    def _grace(self, rec: TaskRecord, max_grace: float | None) -> float:
        """The task's own kill grace period, capped by the drain's ``max_grace``."""
        own = self.engine.cfg.engine.kill_grace
        job = rec.task.labels.get(JOB_LABEL)
        if job and self.jobs is not None and job in self.jobs.jobs:
            spec_grace = self.jobs.jobs[job].spec.kill_grace_period
            own = own if spec_grace is None else spec_grace
        return own if max_grace is None else min(own, max_grace)

    async def _kill(self, task_id: str, grace: float, why: str) -> None:
        with contextlib.suppress(NotFoundError, ConflictError):
            await self.engine.kill(task_id, grace, cause=(REASON_DRAINING, why))
