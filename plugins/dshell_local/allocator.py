"""The master's allocator: agents' resources, roles with weights, DRF, offers and ports.

Mesos-shaped: the allocator owns what each agent has and what is allocated, orders roles by
weighted dominant share (DRF, Ghodsi et al.), and *offers* an agent's free resources to the
frameworks subscribed to a role; a framework answers with launches. Quota limits cap what a
role is offered (its limit less what it holds: one launch at a time while it has a limit);
reservations (Mesos dynamic reservations) keep part of an agent for one role: other roles are
offered only the unreserved part (``_offerable``).

Ports: a launch takes ports from its agent's ranges; each is test-bound before it is handed
out, and a port freed by a finished task is not reused until the engine confirms that the
task's processes are gone (:meth:`Allocator.free_ports`).
"""

from __future__ import annotations

import errno
import getpass
import itertools
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from dshell.model import Agent, Resources

from .config import AgentSpec, RoleConfig

ROLE_NAME = re.compile(r"^(\*|[A-Za-z0-9_][A-Za-z0-9_.-]{0,62})$")
QUOTA_KEYS = ("cpus", "mem", "disk")


def _default_role() -> str:
    """The role of work that names none: the engine user's name (Mesos: the user's role)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "*"
    return name if ROLE_NAME.match(name) else "*"


DEFAULT_ROLE = _default_role()


@dataclass
class AgentState:
    """One logical agent: totals, allocation, ports in use."""

    spec: AgentSpec
    total: Resources
    allocated: Resources = field(default_factory=Resources)
    ports_held: set[int] = field(default_factory=set)
    cursor: int = 0
    tasks: set[str] = field(default_factory=set)

    @property
    def port_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.spec.ports)

    def free(self) -> Resources:
        free = self.total - self.allocated
        free.ports = self.port_count - len(self.ports_held)
        return free


@dataclass
class RoleState:
    name: str
    weight: float = 1.0
    allocated: Resources = field(default_factory=Resources)
    quota: dict[str, float] = field(default_factory=dict)  # limits by QUOTA_KEYS (absent: none)


@dataclass
class Offer:
    """Free resources of one agent, offered to the frameworks of one role."""

    id: str
    agent_id: str
    hostname: str
    role: str
    resources: Resources
    attributes: dict[str, str]


@dataclass
class Launch:
    """A framework's answer to an offer: run ``task_id`` with ``resources`` there."""

    offer_id: str
    task_id: str
    resources: Resources
    wanted_ports: list[int] | None = None  # host ports by position (0: any free one)


@dataclass
class Grant:
    """An accepted launch: where it runs and the ports it got."""

    task_id: str
    agent_id: str
    hostname: str
    role: str
    ports: list[int]


class Framework(Protocol):
    """What the allocator needs from a framework (the built-in one gets offers by call)."""

    id: str

    def demand(self) -> dict[str, int]:
        """Roles with tasks waiting for resources, and how many."""
        ...

    def resource_offers(self, offers: list[Offer], max_tasks: int | None) -> list[Launch]:
        """Accept some offers; return the launches (at most ``max_tasks``)."""
        ...

    def launch_refused(self, task_id: str, role: str, res: Resources) -> None:
        """A launch could not be honoured (no port passed the test bind): take it back."""
        ...


def port_is_free(port: int) -> bool:
    """Test-bind ``port`` on every address (TCP); TIME_WAIT does not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class Allocator:
    """Agents, roles and the offer cycle."""

    def __init__(self, agents: Iterable[AgentSpec], roles: dict[str, RoleConfig]) -> None:
        self.agents: dict[str, AgentState] = {}
        for spec in agents:
            total = Resources(cpus=spec.cpus, mem=spec.mem, disk=spec.disk)
            self.agents[spec.id] = AgentState(spec, total)
        self.roles: dict[str, RoleState] = {
            name: RoleState(name, cfg.weight) for name, cfg in roles.items()
        }
        self.task_place: dict[str, tuple[str, str, Resources]] = {}  # task -> agent, role, res
        self.task_ports: dict[str, tuple[str, list[int]]] = {}
        # agents in maintenance (DRAINING, DRAINED, DOWN): offered to nobody; set by
        # dshell_local.maintenance, shared with the framework (for its explanations)
        self.unavailable: dict[str, str] = {}
        # agent -> role -> reserved cpus/mem/disk (dshell_local.quotas keeps them persisted)
        self.reservations: dict[str, dict[str, Resources]] = {}
        # agent -> role -> MiB of disk held by persistent volumes (dshell_local.volumes): counted
        # as allocated on the agent (and shown as reserved for the role) while the volume exists
        self.volume_disk: dict[str, dict[str, float]] = {}
        self._offer_ids = itertools.count(1)

    # ---- roles and shares -----------------------------------------------------------------

    def role(self, name: str) -> RoleState:
        if name not in self.roles:
            self.roles[name] = RoleState(name)
        return self.roles[name]

    def cluster_total(self) -> Resources:
        total = Resources()
        for agent in self.agents.values():
            total = total + agent.total
        return total

    def share(self, role: str) -> float:
        """Weighted dominant share of ``role`` (DRF)."""
        state = self.role(role)
        total = self.cluster_total()
        parts = [
            state.allocated.cpus / total.cpus if total.cpus else 0.0,
            state.allocated.mem / total.mem if total.mem else 0.0,
            state.allocated.disk / total.disk if total.disk else 0.0,
        ]
        return max(parts) / state.weight

    # ---- feasibility ----------------------------------------------------------------------

    def fits_ever(self, res: Resources) -> bool:
        """Could ``res`` fit on some agent if it were empty?"""
        return any(self._fits(res, a.total, a.port_count) for a in self.agents.values())

    @staticmethod
    def _fits(res: Resources, avail: Resources, ports: int) -> bool:
        need = Resources(res.cpus, res.mem, res.disk, 0, res.gpus)
        return need.fits_in(Resources(avail.cpus, avail.mem, avail.disk, 0, avail.gpus)) and (
            res.ports <= ports
        )

    def explain(self, res: Resources, role: str | None = None) -> str:
        """Why ``res`` does not fit now: its role's quota, or the agents and what they lack
        (what a role may use there: outside other roles' reservations)."""
        if role is not None:
            blocked = self.quota_block(role, res)
            if blocked:
                return blocked
        parts = []
        for agent in self.agents.values():
            if agent.spec.id in self.unavailable:
                parts.append(f"{agent.spec.id}: {self.unavailable[agent.spec.id]}")
                continue
            free = self._offerable(agent, role) if role is not None else agent.free()
            short = [
                f"{k} {getattr(res, k):g} > free {getattr(free, k):g}"
                for k in ("cpus", "mem", "disk", "ports", "gpus")
                if getattr(res, k) > getattr(free, k) + 1e-9
            ]
            parts.append(
                f"{agent.spec.id}: {', '.join(short) or 'no free port passed a test bind'}"
            )
        return "waiting for resources (" + "; ".join(parts[:4]) + ")"

    # ---- quotas and reservations ----------------------------------------------------------

    def role_volumes(self, role: str) -> float:
        """MiB of disk the role's persistent volumes hold (on every agent)."""
        return sum(per_role.get(role, 0.0) for per_role in self.volume_disk.values())

    def _held(self, role: str, state: RoleState, kind: str) -> float:
        """What counts against a role's quota: its tasks' allocations and, for disk, its
        persistent volumes (as Mesos counts reserved resources against quota)."""
        held: float = getattr(state.allocated, kind)
        return held + self.role_volumes(role) if kind == "disk" else held

    def headroom(self, role: str) -> dict[str, float]:
        """What ``role`` may still take under its quota limits (only the limited kinds)."""
        state = self.role(role)
        return {k: lim - self._held(role, state, k) for k, lim in state.quota.items()}

    def quota_block(self, role: str, res: Resources) -> str | None:
        """Why a launch of ``res`` under ``role`` would exceed its quota (None: it would not)."""
        state = self.roles.get(role)
        if state is None or not state.quota:
            return None
        for kind, limit in state.quota.items():
            asked = getattr(res, kind)
            held = self._held(role, state, kind)
            if asked > 1e-9 and held + asked > limit + 1e-9:
                msg = f"role {role}: quota {kind} {limit:g} — {held:g} allocated, {asked:g} asked"
                if asked > limit + 1e-9:
                    msg += " (more than the whole quota: it waits until the quota is raised)"
                return msg
        return None

    def reserved_by(self, agent_id: str, role: str | None = None) -> Resources:
        """Reserved on an agent: for ``role``, or in all (``None``)."""
        per_role = self.reservations.get(agent_id, {})
        if role is not None:
            return per_role.get(role, Resources())
        total = Resources()
        for res in per_role.values():
            total = total + res
        return total

    def reserved_used(self, agent_id: str, role: str) -> Resources:
        """What ``role`` holds on an agent, counted against its reservation there first."""
        agent = self.agents[agent_id]
        held = Resources()
        for task_id in agent.tasks:
            _, task_role, taken = self.task_place[task_id]
            if task_role == role:
                held = held + taken
        mine = self.reserved_by(agent_id, role)
        return Resources(
            min(held.cpus, mine.cpus), min(held.mem, mine.mem), min(held.disk, mine.disk)
        )

    def unreserved_free(self, agent_id: str) -> Resources:
        """The agent's free resources outside every reservation (what other roles may use)."""
        agent = self.agents[agent_id]
        free = agent.free()
        for role, res in self.reservations.get(agent_id, {}).items():
            unused = res - self.reserved_used(agent_id, role)
            free = Resources(
                max(0.0, free.cpus - unused.cpus),
                max(0.0, free.mem - unused.mem),
                max(0.0, free.disk - unused.disk),
                free.ports,
                free.gpus,
            )
        return free

    # ---- the offer cycle ------------------------------------------------------------------

    def _offerable(self, agent: AgentState, role: str | None = None) -> Resources:
        """Free resources of ``agent`` that ``role`` may use: outside other roles'
        reservations, and within the role's quota limits."""
        per_role = self.reservations.get(agent.spec.id)
        if not per_role:
            free = agent.free()
        else:
            free = self.unreserved_free(agent.spec.id)
            if role is not None and role in per_role:
                unused = per_role[role] - self.reserved_used(agent.spec.id, role)
                free = Resources(
                    free.cpus + max(0.0, unused.cpus),
                    free.mem + max(0.0, unused.mem),
                    free.disk + max(0.0, unused.disk),
                    free.ports,
                    free.gpus,
                )
        if role is not None:
            for kind, room in self.headroom(role).items():
                setattr(free, kind, max(0.0, min(getattr(free, kind), room)))
        return free

    def offers_for(self, role: str) -> list[Offer]:
        offers = []
        for agent in self.agents.values():
            if agent.spec.id in self.unavailable:
                continue
            free = self._offerable(agent, role)
            if free.cpus > 1e-9 or free.mem > 1e-9:
                offers.append(
                    Offer(
                        f"o{next(self._offer_ids)}",
                        agent.spec.id,
                        agent.spec.hostname,
                        role,
                        free,
                        agent.spec.attributes,
                    )
                )
        return offers

    def cycle(self, frameworks: list[Framework]) -> list[Grant]:
        """Offer to roles in DRF order until no framework accepts anything more."""
        grants: list[Grant] = []
        exhausted: set[str] = set()
        while True:
            wanting = {
                role
                for fw in frameworks
                for role, n in fw.demand().items()
                if n > 0 and role not in exhausted
            }
            if not wanting:
                return grants
            role = min(wanting, key=lambda r: (self.share(r), r))
            # one role wanting: let it take everything in one pass; else one task, re-sort
            # (one at a time too under a quota or reservations: offers are capped separately)
            limited = bool(self.role(role).quota) or bool(self.reservations)
            max_tasks = None if len(wanting) == 1 and not limited else 1
            accepted = self._offer_role(role, frameworks, max_tasks)
            if not accepted:
                exhausted.add(role)
            grants.extend(accepted)

    def _offer_role(
        self, role: str, frameworks: list[Framework], max_tasks: int | None
    ) -> list[Grant]:
        grants: list[Grant] = []
        for fw in frameworks:
            if fw.demand().get(role, 0) <= 0:
                continue
            offers = {o.id: o for o in self.offers_for(role)}
            if not offers:
                break
            for launch in fw.resource_offers(list(offers.values()), max_tasks):
                offer = offers[launch.offer_id]
                grant = self.allocate(
                    launch.task_id,
                    offer.agent_id,
                    role,
                    launch.resources,
                    wanted=launch.wanted_ports,
                )
                if grant is not None:
                    grants.append(grant)
                else:
                    fw.launch_refused(launch.task_id, role, launch.resources)
            if grants and max_tasks is not None:
                break
        return grants

    # ---- allocation -----------------------------------------------------------------------

    def allocate(
        self,
        task_id: str,
        agent_id: str,
        role: str,
        res: Resources,
        ports: list[int] | None = None,
        wanted: list[int] | None = None,
    ) -> Grant | None:
        """Allocate ``res`` on an agent (ports test-bound unless restoring known ones;
        ``wanted``: fixed host ports by position, 0 for any)."""
        agent = self.agents[agent_id]
        if ports is None:
            if not self._fits(res, agent.free(), agent.free().ports):
                return None
            got = self._take_ports(agent, res.ports, wanted)
            if got is None:
                return None
            ports = got
        else:
            agent.ports_held.update(ports)
        taken = Resources(res.cpus, res.mem, res.disk, 0, res.gpus)
        agent.allocated = agent.allocated + taken
        agent.tasks.add(task_id)
        self.role(role).allocated = self.role(role).allocated + taken
        self.task_place[task_id] = (agent_id, role, taken)
        self.task_ports[task_id] = (agent_id, ports)
        return Grant(task_id, agent_id, agent.spec.hostname, role, ports)

    def set_attributes(self, agent_id: str, attributes: dict[str, str]) -> None:
        """An operator changed the agent's attributes (new placements see them)."""
        self.agents[agent_id].spec.attributes = dict(attributes)

    def port_open(self, agent_id: str, port: int) -> bool:
        """Whether ``port`` is in the agent's ranges and held by no task (no test bind)."""
        agent = self.agents[agent_id]
        in_range = any(lo <= port <= hi for lo, hi in agent.spec.ports)
        return in_range and port not in agent.ports_held

    def offers_ports(self, ports: list[int]) -> bool:
        """Could some agent ever hand out all of ``ports``?"""
        return any(
            all(any(lo <= p <= hi for lo, hi in a.spec.ports) for p in ports)
            for a in self.agents.values()
        )

    def _take_ports(
        self, agent: AgentState, count: int, wanted: list[int] | None = None
    ) -> list[int] | None:
        if wanted and any(wanted):
            fixed = [p for p in wanted if p]
            if not all(self.port_open(agent.spec.id, p) and port_is_free(p) for p in fixed):
                return None
            agent.ports_held.update(fixed)
            rest = self._take_ports(agent, wanted.count(0))
            if rest is None:
                agent.ports_held.difference_update(fixed)
                return None
            dynamic = iter(rest)
            return [p or next(dynamic) for p in wanted]
        if count == 0:
            return []
        candidates = [p for lo, hi in agent.spec.ports for p in range(lo, hi + 1)]
        got: list[int] = []
        n = len(candidates)
        for i in range(n):
            port = candidates[(agent.cursor + i) % n]
            if port in agent.ports_held or port in got or not port_is_free(port):
                continue
            got.append(port)
            if len(got) == count:
                agent.cursor = (candidates.index(port) + 1) % n
                agent.ports_held.update(got)
                return got
        return None

    def release(self, task_id: str) -> None:
        """Give back a finished task's cpus/mem/disk (its ports stay held)."""
        place = self.task_place.pop(task_id, None)
        if place is None:
            return
        agent_id, role, taken = place
        agent = self.agents.get(agent_id)
        if agent is not None:
            agent.allocated = agent.allocated - taken
            agent.tasks.discard(task_id)
        self.role(role).allocated = self.role(role).allocated - taken

    def free_ports(self, task_id: str) -> None:
        """The task's processes are all gone: its ports may be handed out again."""
        held = self.task_ports.pop(task_id, None)
        if held is None:
            return
        agent = self.agents.get(held[0])
        if agent is not None:
            agent.ports_held.difference_update(held[1])

    # ---- views ----------------------------------------------------------------------------

    def _reserved_view(self, agent_id: str) -> dict[str, Resources]:
        """Reservations per role, persistent volumes' disk included."""
        out = dict(self.reservations.get(agent_id, {}))
        for role, mib in self.volume_disk.get(agent_id, {}).items():
            out[role] = out.get(role, Resources()) + Resources(disk=mib)
        return out

    def agent_views(self, used: dict[str, Resources]) -> list[Agent]:
        return [
            Agent(
                id=a.spec.id,
                hostname=a.spec.hostname,
                backend="local",
                total=Resources(a.total.cpus, a.total.mem, a.total.disk, a.port_count),
                allocated=Resources(
                    a.allocated.cpus, a.allocated.mem, a.allocated.disk, len(a.ports_held)
                ),
                used=used.get(a.spec.id, Resources()),
                reserved=sum(self._reserved_view(a.spec.id).values(), Resources()),
                reservations=self._reserved_view(a.spec.id),
                attributes=dict(a.spec.attributes),
                port_ranges=list(a.spec.ports),
                tasks=len(a.tasks),
            )
            for a in self.agents.values()
        ]
