"""Marathon placement constraints in the local engine: evaluation and placement plans (pure).

They are parsed and validated by :mod:`dshell.constraints` (re-exported here: :class:`Rule`,
:func:`to_rule`, :func:`to_rules`, :func:`parse_constraint`, :func:`validate_constraint`).
``field`` is ``hostname`` (also ``@hostname``) or an agent attribute. Constraints count across a
*group*: the active tasks of one service (label ``dshell.service``), else of one ``run``
submission. Operators, as Marathon's ``Constraints.scala`` evaluates them against an agent:

========  ===========================================================================
UNIQUE    no other task of the group on an agent with the same value
CLUSTER   the value equals ``value``; without one, the value of the group's first task
GROUP_BY  the value is one with the fewest tasks of the group, among the values of the
          agents the task may use (``value``, optional, is how many values must exist)
MAX_PER   fewer than ``value`` tasks of the group on agents with the same value
LIKE      the value fully matches the regex ``value``
UNLIKE    the value does not fully match the regex ``value``
IS        the value equals ``value``
========  ===========================================================================

An agent lacking the attribute is refused by every operator except UNLIKE. Unlike Marathon,
which learns the values of a field from the offers it happens to see, the engine knows every
agent, so GROUP_BY balances over all of them and needs no count to spread evenly.

Nothing here does I/O or imports the engine: the framework and the submission use it. A
task's group and constraints are kept in its :class:`~dshell_local.tasks.TaskRuntime`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import regex
from dshell.constraints import (
    HOSTNAME_FIELDS,
    Rule,
    parse_constraint,
    parse_constraints,
    to_rule,
    to_rules,
    validate_constraint,
)
from dshell.errors import UsageError
from dshell.model import Resources

if TYPE_CHECKING:
    from .allocator import AgentState, Allocator
    from .tasks import TaskRecord

__all__ = [  # the parser's names too, for the framework, the submission and the services
    "HOSTNAME_FIELDS",
    "SERVICE_LABEL",
    "Need",
    "Placements",
    "Plan",
    "Rule",
    "Site",
    "Spread",
    "Tally",
    "check_feasible",
    "eligible",
    "explain_wait",
    "field_value",
    "first_refusal",
    "need_of",
    "never_reason",
    "parse_constraint",
    "parse_constraints",
    "plan_placement",
    "refusal",
    "sites_of",
    "spread_values",
    "to_rule",
    "to_rules",
    "validate_constraint",
]

SERVICE_LABEL = "dshell.service"


# ---- agents, groups and what is placed ----------------------------------------------------


@dataclass(frozen=True, eq=False)
class Site:
    """An agent as placement sees it; ``total`` (if known) is what it could ever hold."""

    id: str
    hostname: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    total: Resources | None = None


def sites_of(agents: Iterable[AgentState]) -> list[Site]:
    """The allocator's agents as placement sees them (totals include the port count)."""
    return [
        Site(
            a.spec.id,
            a.spec.hostname,
            dict(a.spec.attributes),
            Resources(a.total.cpus, a.total.mem, a.total.disk, a.port_count, a.total.gpus),
        )
        for a in agents
    ]


def field_value(site: Site, fld: str) -> str | None:
    """The agent's value of ``fld`` (None: the agent lacks that attribute)."""
    if fld in HOSTNAME_FIELDS:
        return site.hostname
    return site.attributes.get(fld)


class Tally:
    """The agents of a group's placed tasks, in placement order, with counts per field value."""

    __slots__ = ("_counts", "_sites")

    def __init__(self, sites: Iterable[Site] = ()) -> None:
        self._sites: dict[object, Site] = {}
        self._counts: dict[str, Counter[str | None]] = {}
        for i, site in enumerate(sites):
            self.add(("#", i), site)

    def __len__(self) -> int:
        return len(self._sites)

    def add(self, key: object, site: Site) -> None:
        self.discard(key)
        self._sites[key] = site
        for fld, counter in self._counts.items():
            counter[field_value(site, fld)] += 1

    def discard(self, key: object) -> None:
        site = self._sites.pop(key, None)
        if site is not None:
            for fld, counter in self._counts.items():
                counter[field_value(site, fld)] -= 1

    def first(self) -> Site | None:
        return next(iter(self._sites.values()), None)

    def sites(self) -> list[Site]:
        return list(self._sites.values())

    def counts(self, fld: str) -> Counter[str | None]:
        """Tasks per value of ``fld`` (kept up to date once asked for)."""
        counter = self._counts.get(fld)
        if counter is None:
            counter = Counter(field_value(s, fld) for s in self._sites.values())
            self._counts[fld] = counter
        return counter


class Placements:
    """Where each group's active tasks run: the registry the framework keeps up to date."""

    def __init__(self) -> None:
        self._groups: dict[str, Tally] = {}
        self._where: dict[str, tuple[str, Site]] = {}  # task -> group, agent

    def place(self, task_id: str, group: str, site: Site) -> None:
        self.forget(task_id)
        self._where[task_id] = (group, site)
        self._groups.setdefault(group, Tally()).add(task_id, site)

    def forget(self, task_id: str) -> None:
        """The task ended (or its launch was refused): it no longer counts."""
        where = self._where.pop(task_id, None)
        if where is None:
            return
        tally = self._groups[where[0]]
        tally.discard(task_id)
        if not len(tally):
            del self._groups[where[0]]

    def tally(self, group: str) -> Tally:
        return self._groups.get(group) or Tally()

    def resite(self, sites: Mapping[str, Site]) -> None:
        """The agents' attributes changed: count every placed task on its agent as it is now."""
        for task_id, (group, old) in list(self._where.items()):
            self.place(task_id, group, sites.get(old.id, old))

    def agents(self, group: str) -> list[str]:
        """The agent of each of the group's placed tasks, oldest first."""
        return [s.id for s in self.tally(group).sites()]


@dataclass(frozen=True)
class Need:
    """What a task asks of placement: its group and its constraints."""

    group: str
    rules: tuple[Rule, ...] = ()
    ports: tuple[int, ...] = ()  # host ports by position (0: any); Marathon's requirePorts
    agent: str | None = None  # the only agent it may use (where its persistent volumes are)

    @property
    def fixed_ports(self) -> list[int]:
        return [p for p in self.ports if p]


def need_of(rec: TaskRecord) -> Need | None:
    """The task's group and constraints, from its runtime (None: neither a service task nor
    constrained); UsageError if its stored constraints are no longer valid."""
    task, rt = rec.task, rec.rt
    rules = to_rules(rt.constraints)
    ports = tuple(rt.port_numbers)
    service = task.service or task.labels.get(SERVICE_LABEL)
    pin = rt.agent_pin
    if service:
        return Need(f"service:{service}", rules, ports, pin)
    if rt.placement_group:
        return Need(rt.placement_group, rules, ports, pin)
    if any(ports) or pin:
        return Need(f"run:{task.id}", rules, ports, pin)
    return None


# ---- evaluation ---------------------------------------------------------------------------

Spread = Mapping[str, frozenset[str]]  # GROUP_BY field -> the values to balance over


# A LIKE pattern with overlapping repetitions, e.g. ``(a|aa)+b``, can take exponential time; the
# engine's event loop must not hang on one, so a match has a time limit (the ``regex`` module's,
# which the standard ``re`` lacks) and a pattern that exceeds it refuses the agent, saying why.
LIKE_TIMEOUT = 0.05


@functools.lru_cache(maxsize=4096)
def _matches(pattern: str, value: str) -> bool | None:
    """Whether ``value`` fully matches ``pattern``; None when that took too long."""
    try:
        return regex.fullmatch(pattern, value, timeout=LIKE_TIMEOUT) is not None
    except TimeoutError:
        return None


def _refuse(rule: Rule, site: Site, placed: Tally, spread: Spread | None) -> str | None:
    fld, op, value = rule
    have = field_value(site, fld)
    if have is None:
        return None if op == "UNLIKE" else f"{site.id} has no {fld}"
    if op in ("LIKE", "UNLIKE"):
        matches = _matches(value or "", have)
        if matches is None:
            return f"{fld}:{op}:{value} took over {LIKE_TIMEOUT * 1000:.0f} ms to match {have!r}"
        if matches == (op == "LIKE"):
            return None
        return f"{fld} {have} {'matches' if matches else 'does not match'} {value}"
    if op == "IS" or (op == "CLUSTER" and value is not None):
        return None if have == value else f"{fld} is {have}, not {value}"
    if op == "CLUSTER":
        first = placed.first()
        there = None if first is None else field_value(first, fld)
        return None if first is None or there == have else f"the group runs on {fld} {there}"
    held = placed.counts(fld)[have] if len(placed) else 0
    if op == "UNIQUE":
        return None if held == 0 else f"{fld} {have} already holds an instance"
    if op == "MAX_PER":
        return None if held < int(value or 0) else f"{fld} {have} already holds {_instances(held)}"
    least, fewest = _fewest(fld, have, placed, spread)
    if held == least:
        return None
    return f"{fld} {have} holds {held}; {', '.join(fewest)} hold{'s' * (len(fewest) == 1)} {least}"


def _fewest(
    fld: str, have: str | None, placed: Tally, spread: Spread | None
) -> tuple[int, list[str]]:
    counts = placed.counts(fld)
    if spread and fld in spread:
        values = set(spread[fld])
    else:
        values = {v for v, n in counts.items() if n > 0 and v is not None}
    if have is not None:
        values.add(have)
    least = min((counts[v] for v in values), default=0)
    return least, sorted(v for v in values if counts[v] == least)


def first_refusal(
    rules: Sequence[Rule], site: Site, placed: Tally, spread: Spread | None
) -> tuple[Rule, str] | None:
    """The first of the (validated) ``rules`` that refuses ``site``, and why; None: admitted."""
    for rule in rules:
        why = _refuse(rule, site, placed, spread)
        if why is not None:
            return rule, why
    return None


def refusal(
    constraints: Sequence[object],
    candidate: Site,
    placed: Sequence[Site] | Tally = (),
    spread: Spread | None = None,
) -> str | None:
    """Why the constraints refuse ``candidate`` for the group's next task (``placed``: the
    agents of its active tasks, including those placed earlier in this round), or None.
    ``spread`` gives GROUP_BY the values to balance over (:func:`spread_values`); without it,
    only the values already in use and the candidate's own count."""
    rules = [to_rule(c) for c in constraints]
    tally = placed if isinstance(placed, Tally) else Tally(placed)
    hit = first_refusal(rules, candidate, tally, spread)
    return None if hit is None else f"{hit[0]} — {hit[1]}"


def _can_hold(site: Site, res: Resources | None) -> bool:
    return res is None or site.total is None or res.fits_in(site.total)


def eligible(
    rules: Sequence[Rule], sites: Iterable[Site], res: Resources | None = None
) -> list[Site]:
    """The agents the task may ever use: they pass the constraints that do not depend on what
    is placed (and have the attributes the others need) and could hold ``res`` if empty."""
    empty = Tally()
    return [
        s
        for s in sites
        if _can_hold(s, res) and all(_refuse(r, s, empty, None) is None for r in rules)
    ]


def spread_values(rules: Sequence[Rule], sites: Iterable[Site]) -> dict[str, frozenset[str]]:
    """For each GROUP_BY field: the values of the (eligible) agents, to balance over."""
    fields = {r.field for r in rules if r.operator == "GROUP_BY"}
    sites = list(sites)
    return {
        f: frozenset(v for v in (field_value(s, f) for s in sites) if v is not None) for f in fields
    }


def never_reason(rules: Sequence[Rule], sites: Sequence[Site], res: Resources | None) -> str | None:
    """Why no agent could ever take the task under ``rules`` (None: some agent could)."""
    pool = list(sites)
    for i, rule in enumerate(rules):
        kept = eligible([rule], pool)
        if not kept:
            among = f" among the agents {', '.join(map(str, rules[:i]))} allows" if i else ""
            return f"constraint {rule} can never be met: {_no_match(rule, pool)}{among}"
        pool = kept
    holding = [s for s in pool if _can_hold(s, res)]
    if not holding:
        return (
            f"no agent the constraints allow ({', '.join(s.id for s in pool)}) can ever hold "
            "this task"
        )
    spread = spread_values(rules, holding)
    for rule in rules:
        if rule.operator == "GROUP_BY" and rule.value and int(rule.value) > len(spread[rule.field]):
            values = ", ".join(sorted(spread[rule.field]))
            return (
                f"constraint {rule} can never be met: the agents that may hold this task have "
                f"{len(spread[rule.field])} value(s) of {rule.field} ({values})"
            )
    return None


def _no_match(rule: Rule, pool: Sequence[Site]) -> str:
    values = sorted({v for v in (field_value(s, rule.field) for s in pool) if v is not None})
    if not values:
        return f"no agent has the attribute {rule.field!r}"
    shown = ", ".join(values[:8]) + (", …" if len(values) > 8 else "")
    if rule.operator == "LIKE":
        return f"no agent's {rule.field} matches {rule.value!r} ({rule.field}: {shown})"
    if rule.operator == "UNLIKE":
        return f"every agent's {rule.field} matches {rule.value!r} ({rule.field}: {shown})"
    return f"no agent has {rule.field} {rule.value!r} ({rule.field}: {shown})"


def check_feasible(
    constraints: Sequence[object], sites: Sequence[Site], res: Resources | None
) -> None:
    """UsageError (naming the constraint) if the configured agents can never satisfy them."""
    why = never_reason([to_rule(c) for c in constraints], sites, res)
    if why is not None:
        raise UsageError(why)


# ---- explanations and plans ---------------------------------------------------------------


def explain_wait(
    rules: Sequence[Rule],
    res: Resources,
    sites: Sequence[Site],
    free: Callable[[str], Resources],
    placed: Tally,
    spread: Spread | None,
    total_agents: int | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> str | None:
    """Why a task whose agents are ``sites`` (:func:`eligible`) waits; None if some agent the
    constraints admit has room now (then the wait is not about placement). ``unavailable``:
    agents in maintenance, and their state."""
    blocked: dict[Rule, list[tuple[Site, str]]] = {}
    roomless: list[str] = []
    for site in sites:
        hit = first_refusal(rules, site, placed, spread)
        if hit is not None:
            blocked.setdefault(hit[0], []).append((site, hit[1]))
            continue
        if unavailable and site.id in unavailable:
            roomless.append(f"{site.id}: {unavailable[site.id]}")
            continue
        avail = free(site.id)
        if res.fits_in(avail):
            return None
        short = [
            f"{k} {getattr(res, k):g} > free {getattr(avail, k):g}"
            for k in ("cpus", "mem", "disk", "ports")
            if getattr(res, k) > getattr(avail, k) + 1e-9
        ]
        roomless.append(f"{site.id}: {', '.join(short)}")
    if roomless:
        return (
            f"waiting for resources on the agents the constraints allow ({'; '.join(roomless[:4])})"
        )
    if not blocked:
        return "waiting for placement: no agent can ever take it"
    scope = (
        " the constraints allow" if total_agents is not None and total_agents > len(sites) else ""
    )
    parts = [
        f"{rule} — {_summary(rule, hits, len(sites), scope, placed, spread)}"
        for rule, hits in blocked.items()
    ]
    return "waiting for placement: " + "; ".join(parts)


def _summary(
    rule: Rule,
    hits: list[tuple[Site, str]],
    of: int,
    scope: str,
    placed: Tally,
    spread: Spread | None,
) -> str:
    n = len(hits)
    if n == of:
        who = "the only agent" if n == 1 else f"all {n} agents{scope}"
    else:
        who = f"{n} agent{'s' * (n != 1)} ({', '.join(s.id for s, _ in hits[:6])})"
    op = rule.operator
    if op == "GROUP_BY":
        least, fewest = _fewest(rule.field, None, placed, spread)
        return (
            f"the next instance goes to {rule.field} {', '.join(fewest)} "
            f"(fewest instances: {least}), where no agent can take it"
        )
    if op not in ("UNIQUE", "MAX_PER"):
        return f"{who}: {hits[0][1]}"
    what = "an instance" if op == "UNIQUE" else _instances(int(rule.value or 0))
    if rule.field in HOSTNAME_FIELDS:
        return f"{who} already hold{'s' * (n == 1)} {what}"
    values = sorted({field_value(s, rule.field) or "" for s, _ in hits})
    if n == of and len(values) > 1:
        return f"every {rule.field} ({', '.join(values)}) already holds {what}"
    return f"{rule.field} {', '.join(values)} already hold{'s' * (len(values) == 1)} {what}"


def _instances(n: int) -> str:
    return f"{n} instance{'s' * (n != 1)}"


class Plan(NamedTuple):
    """Where each of ``count`` new tasks would go (agent ids; None: nowhere now), and why not."""

    agents: list[str | None]
    reasons: list[str | None]


def plan_placement(
    agents_with_free: Sequence[tuple[Site, Resources]] | Allocator,
    group_placed: Sequence[Site | str] | Tally,
    constraints: Sequence[object],
    resources: Resources,
    count: int,
) -> Plan:
    """Place ``count`` tasks of ``resources`` one after the other, first fit in agent order, as
    the framework would now (without launching anything): the dry-run placement plan.

    ``agents_with_free``: (agent, free resources) pairs, or the engine's allocator (its agents
    as they are now, those in maintenance taking nothing); ``group_placed``: the agents (or
    agent ids) of the group's active tasks.
    """
    away: Mapping[str, str] = {}
    if not isinstance(agents_with_free, Sequence):
        away = agents_with_free.unavailable
        table = agents_with_free.agents.values()
        agents_with_free = list(zip(sites_of(table), (a.free() for a in table), strict=True))
    by_id = {s.id: s for s, _ in agents_with_free}
    if isinstance(group_placed, Tally):
        group_placed = group_placed.sites()
    placed = [by_id.get(p) if isinstance(p, str) else p for p in group_placed]
    tally = Tally(p for p in placed if p is not None)
    rules = [to_rule(c) for c in constraints]
    sites = [s for s, _ in agents_with_free]
    free = {s.id: r for s, r in agents_with_free}
    never = never_reason(rules, sites, resources)
    if never is not None:
        return Plan([None] * count, [never] * count)
    usable = eligible(rules, sites, resources)
    spread = spread_values(rules, usable)
    out: list[str | None] = []
    reasons: list[str | None] = []
    for i in range(count):
        site = next(
            (
                s
                for s in usable
                if s.id not in away
                and resources.fits_in(free[s.id])
                and first_refusal(rules, s, tally, spread) is None
            ),
            None,
        )
        if site is None:
            why = explain_wait(
                rules, resources, usable, free.__getitem__, tally, spread, len(sites), away
            )
            out.append(None)
            reasons.append(why or "waiting for resources")
            continue
        free[site.id] = free[site.id] - resources
        tally.add(("plan", i), site)
        out.append(site.id)
        reasons.append(None)
    return Plan(out, reasons)
