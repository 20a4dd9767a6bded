"""The engine side of preemption (:mod:`dshell_local.preemption` has the rules and the
chooser): after each offer cycle the waiting preferred tasks may start preemptions; the
victims are killed with their grace; what they give back is held on their agent for the
preemptor, which is placed there (before the next offer cycle) once they are all gone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dshell.errors import ConflictError, NotFoundError, UsageError
from dshell.model import Resources, TaskState

from . import constraints as cons
from .allocator import DEFAULT_ROLE, Grant
from .preemption import (
    PREEMPTIBLE,
    PREFERRED,
    Choice,
    Placed,
    Room,
    Waiting,
    choose,
    default_tier,
)
from .tasks import REASON_PREEMPTED, REASON_WAITING, TaskRecord

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


@dataclass
class _Preemption:
    """A preemptor waiting for its victims on one agent; what they gave back is held there."""

    agent: str
    role: str
    victims: set[str]
    held: Resources = field(default_factory=Resources)


class Preemptor:
    """Chooses preemptions for the waiting preferred tasks after each offer cycle, kills the
    victims, holds what they give back on their agent (counted as allocated: no other task
    takes it) and places the preemptor there once they are all gone.

    One preemption at a time per agent. A preemptor is out of the framework's queue meanwhile
    (its message names its victims); if it cannot be placed after all (a port, a quota or a
    reservation changed meanwhile) it goes back to the queue. After an engine restart a
    preemptor is an ordinary waiting task again."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inflight: dict[str, _Preemption] = {}  # preemptor -> its preemption
        self._victim_of: dict[str, str] = {}  # victim -> preemptor
        # a victim's kill grace (None: the engine's); the daemon sets the services' and jobs'
        self.grace_of: Callable[[TaskRecord], float | None] = lambda _rec: None

    # ---- hooks ------------------------------------------------------------------------------

    def ending(self, task_id: str) -> None:
        """``task_id`` became terminal, its resources not yet released (engine.finalize)."""
        mine = self.inflight.pop(task_id, None)
        if mine is not None:  # the preemptor itself ended (killed while it waited)
            self._unhold(mine)
            for victim in mine.victims:
                self._victim_of.pop(victim, None)
            return
        preemptor = self._victim_of.pop(task_id, None)
        if preemptor is None:
            return
        pre = self.inflight[preemptor]
        pre.victims.discard(task_id)
        place = self.engine.allocator.task_place.get(task_id)
        if place is not None:  # released right after: hold it for the preemptor
            taken = place[2]
            self.engine.allocator.agents[pre.agent].allocated += taken
            pre.held = pre.held + taken

    def place_ready(self) -> list[Grant]:
        """Place the preemptors whose victims are all gone, on their agent."""
        grants: list[Grant] = []
        for task_id in [t for t, p in self.inflight.items() if not p.victims]:
            pre = self.inflight.pop(task_id)
            self._unhold(pre)
            rec = self.engine.records.get(task_id)
            if rec is None or rec.task.state is not TaskState.STAGING:
                continue
            grant = self._place(rec, pre)
            if grant is None:
                log.info("preemptor %s does not fit on %s after all: queued", task_id, pre.agent)
                self.engine.framework.launch_refused(task_id, pre.role, rec.task.resources)
            else:
                grants.append(grant)
        return grants

    def select(self) -> bool:
        """Start the preemptions the waiting preferred tasks need; whether any started."""
        records = self.engine.records
        waiting = [
            records[t] for t, _ in self.engine.framework.waiting() if _is_preferred(records, t)
        ]
        if not waiting:
            return False
        waiting.sort(key=lambda rec: -(rec.task.priority or 0))  # stable: then by submission
        top = waiting[0].task.priority or 0
        if not any(
            (r.task.priority or 0) < top and tier_of(r) == PREEMPTIBLE for r in records.values()
        ):
            return False  # the common case: nobody to preempt (all priorities equal)
        placed = self._placed()
        busy = {p.agent for p in self.inflight.values()}
        started = False
        for rec in waiting:
            choice = self._choose(rec, placed, busy)
            if choice is None:
                continue
            self._start(rec, choice)
            busy.add(choice.agent)
            gone = set(choice.victims)
            placed = [
                Placed(p.id, p.agent, p.role, p.res, p.tier, p.priority, p.order, True)
                if p.id in gone
                else p
                for p in placed
            ]
            started = True
        return started

    # ---- helpers ----------------------------------------------------------------------------

    def _placed(self) -> list[Placed]:
        alloc = self.engine.allocator
        out = []
        for order, (task_id, rec) in enumerate(self.engine.records.items()):
            place = alloc.task_place.get(task_id)
            if place is None:
                continue
            held = alloc.task_ports.get(task_id)
            res = Resources(place[2].cpus, place[2].mem, place[2].disk, len(held[1]) if held else 0)
            task = rec.task
            out.append(
                Placed(
                    task_id,
                    place[0],
                    place[1],
                    res,
                    tier_of(rec),
                    task.priority or 0,
                    order,
                    task.state is TaskState.KILLING or task_id in self._victim_of,
                )
            )
        return out

    def _rooms(self, rec: TaskRecord, busy: set[str]) -> list[Room] | None:
        """The agents the task may use now (constraints, maintenance, no preemption in
        flight there); None when it cannot preempt at all (fixed host ports)."""
        try:
            need = cons.need_of(rec)
        except UsageError:
            return None
        if need is not None and need.fixed_ports:
            return None
        alloc = self.engine.allocator
        sites = cons.sites_of(alloc.agents.values())
        if need is not None and need.agent is not None:
            sites = [s for s in sites if s.id == need.agent]
        if need is not None and need.rules:
            usable = cons.eligible(need.rules, sites, rec.task.resources)
            spread = cons.spread_values(need.rules, usable)
            tally = self.engine.framework.placements.tally(need.group)
            sites = [s for s in usable if cons.first_refusal(need.rules, s, tally, spread) is None]
        rooms = []
        for site in sites:
            if site.id in alloc.unavailable or site.id in busy:
                continue
            agent = alloc.agents[site.id]
            rooms.append(
                Room(
                    site.id,
                    Resources(
                        agent.total.cpus, agent.total.mem, agent.total.disk, agent.port_count
                    ),
                    len(agent.ports_held),
                    dict(alloc.reservations.get(site.id, {})),
                    Resources(agent.allocated.cpus, agent.allocated.mem, agent.allocated.disk),
                )
            )
        return rooms

    def _choose(self, rec: TaskRecord, placed: list[Placed], busy: set[str]) -> Choice | None:
        rooms = self._rooms(rec, busy)
        if not rooms:
            return None
        task = rec.task
        role = task.role or DEFAULT_ROLE
        who = Waiting(
            task.id,
            role,
            task.resources,
            tier_of(rec),
            task.priority or 0,
            self.engine.allocator.headroom(role),
        )
        return choose(who, rooms, placed)

    def _start(self, rec: TaskRecord, choice: Choice) -> None:
        task = rec.task
        self.engine.framework.take(task.id)
        self.inflight[task.id] = _Preemption(
            choice.agent, task.role or DEFAULT_ROLE, set(choice.victims)
        )
        for victim in choice.victims:
            self._victim_of[victim] = task.id
        names = ", ".join(choice.victims)
        log.info("%s preempts %s on %s", task.id, names, choice.agent)
        task.message = f"preempting {names} on agent {choice.agent}"
        task.reason = REASON_WAITING
        self.engine.save(rec, "TASK_PREEMPTING")
        for victim in choice.victims:
            self.engine.spawn_bg(self._kill(victim, task.id))

    async def _kill(self, victim: str, preemptor: str) -> None:
        rec = self.engine.records.get(victim)
        grace = self.grace_of(rec) if rec is not None else None
        with contextlib.suppress(NotFoundError, ConflictError):
            await self.engine.kill(
                victim, grace, cause=(REASON_PREEMPTED, f"preempted by {preemptor}")
            )

    def _place(self, rec: TaskRecord, pre: _Preemption) -> Grant | None:
        alloc = self.engine.allocator
        res = rec.task.resources
        offer = next((o for o in alloc.offers_for(pre.role) if o.agent_id == pre.agent), None)
        if offer is None or not res.fits_in(offer.resources):
            return None
        grant = alloc.allocate(rec.task.id, pre.agent, pre.role, res)
        if grant is None:
            return None
        need = cons.need_of(rec)
        if need is not None:
            site = cons.sites_of([alloc.agents[pre.agent]])[0]
            self.engine.framework.placements.place(rec.task.id, need.group, site)
        return grant

    def _unhold(self, pre: _Preemption) -> None:
        agent = self.engine.allocator.agents.get(pre.agent)
        if agent is not None:
            agent.allocated -= pre.held
        pre.held = Resources()


def tier_of(rec: TaskRecord) -> str:
    """A task's tier (tasks stored before tiers existed: the default of their kind)."""
    return rec.task.tier or default_tier(rec.task.service is not None)


def _is_preferred(records: Mapping[str, TaskRecord], task_id: str) -> bool:
    rec = records.get(task_id)
    return rec is not None and tier_of(rec) == PREFERRED


def grace_from(services: Any, jobs: Any) -> Callable[[TaskRecord], float | None]:
    """A victim's kill grace: its service's or its batch job's ``kill_grace_period``."""
    from .batch import JOB_LABEL

    def grace(rec: TaskRecord) -> float | None:
        task = rec.task
        if task.service is not None and task.service in services.services:
            spec = services.services[task.service].spec_of(rec)
            return spec.kill_grace_period
        job = task.labels.get(JOB_LABEL)
        if job is not None and job in jobs.jobs:
            return jobs.jobs[job].spec.kill_grace_period
        return None

    return grace
