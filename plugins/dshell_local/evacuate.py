"""Whether a service instance on an agent in maintenance can move: the drain's blocker check.

The services controller moves the instances off a draining agent like a rolling deployment
(:meth:`dshell_local.services.ServiceController._rolling`); before it starts a replacement it
asks :func:`blocker` whether any agent that is UP may take one under the service's
constraints, given where its instances run now. If none may, the instance stays and the drain
reports it as blocked with the refusals (:mod:`dshell_local.maintenance`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dshell.model import Resources

from . import constraints as cons

if TYPE_CHECKING:
    from dshell.specs.model import ServiceSpec

    from .engine import Engine


def blocker(engine: Engine, service: str, spec: ServiceSpec) -> str | None:
    """Why no agent outside maintenance may take another instance of ``service`` now (its
    constraints, or no agent that could ever hold it being UP); None when one may. Free
    resources do not count: a replacement that waits for room is not blocked."""
    away = engine.allocator.unavailable
    res = Resources(
        cpus=spec.resources.cpus,
        mem=spec.resources.mem,
        disk=spec.resources.disk,
        ports=len(spec.ports),
    )
    rules = cons.to_rules(spec.constraints)
    usable = cons.eligible(rules, cons.sites_of(engine.allocator.agents.values()), res)
    spread = cons.spread_values(rules, usable)
    placed = engine.framework.placements.tally(f"service:{service}")
    refusals = []
    for site in usable:
        if site.id in away:
            continue
        hit = cons.first_refusal(rules, site, placed, spread)
        if hit is None:
            return None
        refusals.append(f"{site.id}: {hit[0]} — {hit[1]}")
    if not refusals:
        return "no other agent that could hold it is UP"
    return "no other agent may take it (" + "; ".join(refusals[:4]) + ")"
