"""The built-in meta-framework: it holds the tasks waiting for resources and answers offers.

It receives offers from the allocator by direct call (no scheduler API round trip). Services,
health checks, deployments and batch jobs will live here later; for now it places plain tasks,
first fit in submission order per role, skipping any shape that already failed in one pass so
a long queue of identical waiting tasks costs one check per offer round.

Tasks with placement constraints (:mod:`dshell_local.constraints`) are placed first fit too,
onto the first offer that fits and that their constraints admit, given where the other tasks
of their group run. The framework keeps that registry (:attr:`MetaFramework.placements`)
itself: it records each launch it answers with (so tasks placed earlier in the same round
count), takes it back when the allocator refuses the launch, and forgets a task when the
engine calls :meth:`MetaFramework.remove` (the task ended or was killed). After a restart the
engine hands it the recovered tasks (:meth:`MetaFramework.restore`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from dshell.errors import UsageError
from dshell.model import Resources, TaskState

from . import constraints as cons
from .allocator import Launch, Offer
from .tasks import TaskRecord

log = logging.getLogger(__name__)

Shape = tuple[float, float, float, int, float]
_CACHE_MAX = 1024  # distinct (constraints, shape) pairs whose eligible agents are remembered


def _shape(res: Resources) -> Shape:
    return (res.cpus, res.mem, res.disk, res.ports, res.gpus)


class MetaFramework:
    """Queues of waiting tasks by role; first-fit placement onto offers, under constraints."""

    id = "dshell"
    name = "dshell"

    def __init__(self, sites: Iterable[cons.Site] = ()) -> None:
        self.pending: dict[str, dict[str, Resources]] = {}  # role -> task -> resources
        self._role_of: dict[str, str] = {}
        self._sites = {s.id: s for s in sites}
        self._needs: dict[str, cons.Need] = {}  # active tasks with a group, until they end
        # is a host port free on an agent (set by the engine: the allocator knows)
        self.port_open: Callable[[str, int], bool] = lambda _agent, _port: True
        # agents in maintenance and why (the allocator's, set by the engine): never offered,
        # named in the explanation of a waiting task
        self.unavailable: dict[str, str] = {}
        self.placements = cons.Placements()
        self._usable: dict[
            tuple[tuple[cons.Rule, ...], Shape], tuple[list[cons.Site], cons.Spread]
        ] = {}

    def add(self, task_id: str, role: str, res: Resources, need: cons.Need | None = None) -> None:
        """Queue a task (``need``: its group and constraints; a task queued again keeps it)."""
        self.pending.setdefault(role, {})[task_id] = res
        self._role_of[task_id] = role
        if need is not None:
            self._needs[task_id] = need

    def _dequeue(self, task_id: str) -> bool:
        role = self._role_of.pop(task_id, None)
        if role is None:
            return False
        self.pending[role].pop(task_id, None)
        return True

    def take(self, task_id: str) -> bool:
        """Take a waiting task out of the queue: it is placed another way (a preemptor, on
        its victims' agent); its group and constraints stay."""
        return self._dequeue(task_id)

    def remove(self, task_id: str) -> bool:
        """The task ended or was killed: it no longer waits, nor counts for its group."""
        self._needs.pop(task_id, None)
        self.placements.forget(task_id)
        return self._dequeue(task_id)

    def set_sites(self, sites: Iterable[cons.Site]) -> None:
        """The agents' attributes changed: new placements see them (so do the groups'
        counts of tasks already placed, which stay where they run)."""
        self._sites = {s.id: s for s in sites}
        self._usable.clear()
        self.placements.resite(self._sites)

    def restore(self, records: Iterable[TaskRecord]) -> None:
        """After a restart: the groups and constraints of recovered tasks (kept in their
        runtime), and where those already launched run."""
        for rec in records:
            task = rec.task
            try:
                need = cons.need_of(rec)
            except UsageError as exc:
                log.warning("task %s: ignoring its stored constraints: %s", task.id, exc)
                continue
            if need is None:
                continue
            self._needs[task.id] = need
            if task.state is not TaskState.STAGING and task.agent_id:
                site = self._sites.get(task.agent_id)
                if site is not None:
                    self.placements.place(task.id, need.group, site)

    def waiting(self) -> list[tuple[str, Resources]]:
        return [(t, r) for queue in self.pending.values() for t, r in queue.items()]

    def role_of(self, task_id: str) -> str | None:
        """The role of a waiting task."""
        return self._role_of.get(task_id)

    def demand(self) -> dict[str, int]:
        return {role: len(q) for role, q in self.pending.items() if q}

    def resource_offers(self, offers: list[Offer], max_tasks: int | None) -> list[Launch]:
        if not offers:
            return []
        if self._needs:
            return self._offers_with_needs(offers, max_tasks)
        role = offers[0].role  # no task has a group: plain first fit, the benchmarked path
        queue = self.pending.get(role, {})
        left = {o.id: o.resources for o in offers}
        failed: set[Shape] = set()
        launches: list[Launch] = []
        for task_id, res in list(queue.items()):
            if max_tasks is not None and len(launches) >= max_tasks:
                break
            shape = _shape(res)
            if shape in failed:
                continue
            for offer in offers:
                if res.fits_in(left[offer.id]):
                    left[offer.id] = left[offer.id] - res
                    launches.append(Launch(offer.id, task_id, res))
                    self._dequeue(task_id)
                    break
            else:
                failed.add(shape)
        return launches

    def _offers_with_needs(self, offers: list[Offer], max_tasks: int | None) -> list[Launch]:
        """First fit too; a task with constraints takes the first offer they admit, and each
        task with a group is recorded where it goes (before the next one is considered)."""
        role = offers[0].role
        queue = self.pending.get(role, {})
        left = {o.id: o.resources for o in offers}
        failed: set[Shape] = set()
        failed_by_group: dict[str, set[tuple[Shape, tuple[cons.Rule, ...], str | None]]] = {}
        needs = self._needs
        taken: set[tuple[str, int]] = set()  # fixed ports handed out in this round
        launches: list[Launch] = []
        for task_id, res in list(queue.items()):
            if max_tasks is not None and len(launches) >= max_tasks:
                break
            need = needs.get(task_id)
            chosen: Offer | None
            mine = offers  # a task with persistent volumes: only its volumes' agent
            if need is not None and need.agent is not None:
                mine = [o for o in offers if o.agent_id == need.agent]
            if need is not None and need.fixed_ports:
                chosen = self._fit_fixed_ports(res, need, mine, left, taken)
                if chosen is None:
                    continue
                taken.update((chosen.agent_id, p) for p in need.fixed_ports)
            elif need is not None and need.rules:
                chosen = self._fit_constrained(res, need, mine, left, failed_by_group)
                if chosen is None:
                    continue
            elif need is not None and need.agent is not None:
                chosen = next((o for o in mine if res.fits_in(left[o.id])), None)
                if chosen is None:
                    continue
            else:
                shape = _shape(res)
                if shape in failed:
                    continue
                for offer in offers:
                    if res.fits_in(left[offer.id]):
                        chosen = offer
                        break
                else:
                    failed.add(shape)
                    continue
            left[chosen.id] = left[chosen.id] - res
            wanted = list(need.ports) if need is not None and need.fixed_ports else None
            launches.append(Launch(chosen.id, task_id, res, wanted))
            self._dequeue(task_id)
            if need is not None:
                self.placements.place(task_id, need.group, self._site(chosen))
                failed_by_group.pop(need.group, None)  # the group changed: retry its shapes
        return launches

    def _fit_fixed_ports(
        self,
        res: Resources,
        need: cons.Need,
        offers: list[Offer],
        left: dict[str, Resources],
        taken: set[tuple[str, int]],
    ) -> Offer | None:
        """The first offer with room and every fixed host port of ``need`` free (and its
        constraints met, when it has some)."""
        placed = self.placements.tally(need.group)
        spread = self._usable_sites(need.rules, res)[1] if need.rules else None
        for offer in offers:
            if not res.fits_in(left[offer.id]):
                continue
            ports = need.fixed_ports
            if any(
                (offer.agent_id, p) in taken or not self.port_open(offer.agent_id, p) for p in ports
            ):
                continue
            if need.rules and cons.first_refusal(need.rules, self._site(offer), placed, spread):
                continue
            return offer
        return None

    def _site(self, offer: Offer) -> cons.Site:
        site = self._sites.get(offer.agent_id)
        return site or cons.Site(offer.agent_id, offer.hostname, dict(offer.attributes))

    def _usable_sites(
        self, rules: tuple[cons.Rule, ...], res: Resources
    ) -> tuple[list[cons.Site], cons.Spread]:
        """The agents a task may ever use, and its GROUP_BY values (cached: agents are fixed)."""
        key = (rules, _shape(res))
        hit = self._usable.get(key)
        if hit is None:
            if len(self._usable) >= _CACHE_MAX:
                self._usable.clear()
            usable = cons.eligible(rules, self._sites.values(), res)
            hit = (usable, cons.spread_values(rules, usable))
            self._usable[key] = hit
        return hit

    def _fit_constrained(
        self,
        res: Resources,
        need: cons.Need,
        offers: list[Offer],
        left: dict[str, Resources],
        failed_by_group: dict[str, set[tuple[Shape, tuple[cons.Rule, ...], str | None]]],
    ) -> Offer | None:
        key = (_shape(res), need.rules, need.agent)
        tried = failed_by_group.get(need.group)
        if tried is not None and key in tried:
            return None
        placed = self.placements.tally(need.group)
        _, spread = self._usable_sites(need.rules, res)
        for offer in offers:
            if res.fits_in(left[offer.id]) and (
                cons.first_refusal(need.rules, self._site(offer), placed, spread) is None
            ):
                return offer
        failed_by_group.setdefault(need.group, set()).add(key)
        return None

    def placement_messages(self, free: Callable[[str], Resources]) -> dict[str, str]:
        """Why each waiting task with constraints cannot be placed now (``free``: an agent's
        free resources). Tasks that only wait for resources are left out."""
        out: dict[str, str] = {}
        if not self._needs:
            return out
        seen: dict[tuple[str, tuple[cons.Rule, ...], Shape, str | None], str | None] = {}
        for queue in self.pending.values():
            for task_id, res in queue.items():
                need = self._needs.get(task_id)
                if need is not None and need.agent is not None and not need.rules:
                    out[task_id] = self._pinned_wait(need.agent, res, free)
                    continue
                if need is not None and need.fixed_ports:
                    out[task_id] = self._port_wait(need.fixed_ports)
                    continue
                if need is None or not need.rules:
                    continue
                key = (need.group, need.rules, _shape(res), need.agent)
                if key not in seen:
                    usable, spread = self._usable_sites(need.rules, res)
                    if need.agent is not None:
                        usable = [s for s in usable if s.id == need.agent]
                    placed = self.placements.tally(need.group)
                    seen[key] = cons.explain_wait(
                        need.rules,
                        res,
                        usable,
                        free,
                        placed,
                        spread,
                        len(self._sites),
                        self.unavailable,
                    )
                message = seen[key]
                if message is not None:
                    out[task_id] = message
        return out

    def _pinned_wait(self, agent: str, res: Resources, free: Callable[[str], Resources]) -> str:
        """Why a task held to its persistent volumes' agent waits."""
        where = f"agent {agent} (it holds the task's persistent volumes)"
        if agent in self.unavailable:
            return f"waiting for {where}: {self.unavailable[agent]}"
        avail = free(agent)
        short = [
            f"{k} {getattr(res, k):g} > free {getattr(avail, k):g}"
            for k in ("cpus", "mem", "disk", "ports")
            if getattr(res, k) > getattr(avail, k) + 1e-9
        ]
        return f"waiting for resources on {where}" + (f": {', '.join(short)}" if short else "")

    def _port_wait(self, ports: list[int]) -> str:
        open_on = [a for a in self._sites if all(self.port_open(a, p) for p in ports)]
        if open_on:
            return f"waiting for resources on an agent with host port(s) {ports} free"
        return f"waiting for host port(s) {ports}: held by other tasks"

    def launch_refused(self, task_id: str, role: str, res: Resources) -> None:
        """The allocator could not honour a launch (no port passed the test bind): requeue."""
        queue = self.pending.setdefault(role, {})
        queue[task_id] = res
        self._role_of[task_id] = role
        self.placements.forget(task_id)
