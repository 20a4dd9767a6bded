"""Preemption tiers and priorities (Aurora's vocabulary): who may take whose place.

Every task has a *tier* and a *priority* (an integer, default 0). Service instances are
``preferred`` unless their spec says otherwise; plain tasks (``run``) and batch-job runs are
``preemptible``. When a ``preferred`` task waits for resources and would fit on one agent if
some ``preemptible`` tasks of *strictly lower* priority there were gone, those tasks are killed
(with their grace period; they end KILLED with ``REASON_PREEMPTED`` and a message naming the
preemptor) and the preemptor is launched there once they are gone. A preferred task is never
preempted, a preemptible one never preempts, and equal priorities never preempt: with the
defaults (priority 0 everywhere) nothing is ever preempted.

:func:`choose` is the pure part: given the agents the waiting task may use (its constraints,
maintenance and the agents with a preemption already in flight are the caller's business), the
tasks placed on them and the waiting task, it picks the agent and the victims, counting only
what the waiting task could then use (other roles' reservations, its role's quota). The engine
side is :class:`dshell_local.preemptor.Preemptor`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dshell.model import Resources

PREFERRED = "preferred"
PREEMPTIBLE = "preemptible"
TIERS = (PREEMPTIBLE, PREFERRED)
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1
_EPS = 1e-9


def default_tier(service: bool) -> str:
    """The tier of a task that names none: services' instances are preferred, the rest not."""
    return PREFERRED if service else PREEMPTIBLE


def problem(tier: str | None, priority: int) -> str | None:
    """What is wrong with a tier and priority (None: nothing), naming the field."""
    if tier == "revocable":
        return (
            "tier: 'revocable' (Aurora's revocable resources) is not supported; "
            "use preferred or preemptible"
        )
    if tier is not None and tier not in TIERS:
        return f"tier: must be preferred or preemptible, not {tier!r}"
    if isinstance(priority, bool) or not isinstance(priority, int):
        return f"priority: must be an integer, not {priority!r}"
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        return f"priority: must be {PRIORITY_MIN}..{PRIORITY_MAX}, not {priority}"
    return None


# ---- the pure chooser -----------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """A task holding resources on an agent (``order``: its submission order, newer larger)."""

    id: str
    agent: str
    role: str
    res: Resources  # cpus, mem, disk; ports: how many it holds
    tier: str
    priority: int
    order: int = 0
    dying: bool = False  # already being killed: its resources come back anyway


@dataclass(frozen=True)
class Room:
    """An agent: its totals (``total.ports``: its port count), ports held and reservations."""

    id: str
    total: Resources
    ports_held: int = 0
    reservations: Mapping[str, Resources] = field(default_factory=dict)
    # cpus/mem/disk allocated there, by tasks and anything else (persistent volumes' disk,
    # held resources); None: the placed tasks' sum
    allocated: Resources | None = None


@dataclass(frozen=True)
class Waiting:
    """The task that waits: its role's quota headroom maps the limited kinds to what is left."""

    id: str
    role: str
    res: Resources
    tier: str
    priority: int
    headroom: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    agent: str
    victims: tuple[str, ...]


def room_after(
    agent: Room, placed: Iterable[Placed], gone: Iterable[Placed], who: Waiting
) -> Resources:
    """What ``who`` may use on ``agent`` once the tasks ``gone`` are gone (``placed``: every
    task there): outside other roles' unused reservations, within its role's quota. The
    allocator's arithmetic (``Allocator._offerable``)."""
    gone_ids = {p.id for p in gone}
    here = [p for p in placed if p.agent == agent.id]
    staying = [p for p in here if p.id not in gone_ids]
    leaving = _sum(p.res for p in here if p.id in gone_ids)
    everything = agent.allocated if agent.allocated is not None else _sum(p.res for p in here)
    used = everything - leaving
    free = Resources(
        agent.total.cpus - used.cpus,
        agent.total.mem - used.mem,
        agent.total.disk - used.disk,
        agent.total.ports - agent.ports_held + leaving.ports,
    )
    mine = Resources()
    for role, reserved in agent.reservations.items():
        held = _sum(p.res for p in staying if p.role == role)
        unused = Resources(
            max(0.0, reserved.cpus - min(held.cpus, reserved.cpus)),
            max(0.0, reserved.mem - min(held.mem, reserved.mem)),
            max(0.0, reserved.disk - min(held.disk, reserved.disk)),
        )
        free = Resources(
            max(0.0, free.cpus - unused.cpus),
            max(0.0, free.mem - unused.mem),
            max(0.0, free.disk - unused.disk),
            free.ports,
        )
        if role == who.role:
            mine = unused
    free = Resources(free.cpus + mine.cpus, free.mem + mine.mem, free.disk + mine.disk, free.ports)
    back = _sum(p.res for p in placed if p.id in gone_ids and p.role == who.role)
    for kind, left in who.headroom.items():
        setattr(free, kind, max(0.0, min(getattr(free, kind), left + getattr(back, kind))))
    return free


def _sum(items: Iterable[Resources]) -> Resources:
    total = Resources()
    for res in items:
        total = total + res
    return total


def _fits(res: Resources, room: Resources) -> bool:
    return (
        res.cpus <= room.cpus + _EPS
        and res.mem <= room.mem + _EPS
        and res.disk <= room.disk + _EPS
        and res.ports <= room.ports
    )


def may_preempt(who: Waiting, victim: Placed) -> bool:
    """The rule: a preferred task preempts preemptible ones of strictly lower priority."""
    return (
        who.tier == PREFERRED
        and victim.tier == PREEMPTIBLE
        and victim.priority < who.priority
        and not victim.dying
    )


def _victims_on(agent: Room, placed: Sequence[Placed], who: Waiting) -> list[Placed] | None:
    """A minimal set of victims on ``agent`` that makes ``who`` fit (None: none does).

    Lowest priority first (then the youngest, then by id) until it fits; then each victim,
    the most valuable first, is spared if the others suffice without it."""
    here = [p for p in placed if p.agent == agent.id]
    dying = [p for p in here if p.dying]
    candidates = sorted(
        (p for p in here if may_preempt(who, p)), key=lambda p: (p.priority, -p.order, p.id)
    )
    chosen: list[Placed] = []
    for victim in candidates:
        chosen.append(victim)
        if _fits(who.res, room_after(agent, here, dying + chosen, who)):
            break
    else:
        return None
    for victim in sorted(chosen, key=lambda p: (-p.priority, p.order, p.id)):
        rest = [p for p in chosen if p is not victim]
        if _fits(who.res, room_after(agent, here, dying + rest, who)):
            chosen = rest
    return chosen


def choose(who: Waiting, agents: Sequence[Room], placed: Sequence[Placed]) -> Choice | None:
    """Where ``who`` should preempt, and whom; None when it need not (it fits on one of
    ``agents`` now, or will once the tasks already dying there are gone) or cannot.

    Among the agents where some victims would make room, the one whose costliest victim has
    the lowest priority wins, then the fewest victims, then the lowest sum of their
    priorities, then the agents' order."""
    if who.tier != PREFERRED:
        return None
    for agent in agents:
        dying = [p for p in placed if p.agent == agent.id and p.dying]
        if _fits(who.res, room_after(agent, placed, dying, who)):
            return None
    best: tuple[tuple[int, int, int, int], Choice] | None = None
    for index, agent in enumerate(agents):
        victims = _victims_on(agent, placed, who)
        if not victims:
            continue
        prios = [v.priority for v in victims]
        key = (max(prios), len(victims), sum(prios), index)
        if best is None or key < best[0]:
            best = (key, Choice(agent.id, tuple(v.id for v in victims)))
    return None if best is None else best[1]
