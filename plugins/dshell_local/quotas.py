"""Roles as the operator sets them: quota limits, weights and dynamic reservations.

Mesos-shaped (operator API ``UPDATE_QUOTA``/``UPDATE_WEIGHTS``, ``RESERVE_RESOURCES``/
``UNRESERVE_RESOURCES``): a quota *limit* caps what a role may hold at once (a launch beyond
it waits, with the reason); a weight scales the role's DRF share; a reservation keeps part of
an agent for one role. One persisted record per role (the ``roles`` table); the allocator
enforces them (:mod:`dshell_local.allocator`).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import msgspec
from dshell.errors import NotFoundError, UsageError
from dshell.model import Resources, RoleQuota

from .allocator import QUOTA_KEYS, ROLE_NAME

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


class RoleRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The persisted operator settings of one role."""

    name: str
    weight: float | None = None  # None: the configured weight (1 unless [roles.X])
    quota: dict[str, float] = {}
    reserved: dict[str, dict[str, float]] = {}  # agent -> cpus/mem/disk


class QuotaRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/quota/set``: limits (absent: unchanged) and the weight."""

    role: str
    cpus: float | None = None
    mem: float | None = None
    disk: float | None = None
    weight: float | None = None


class RoleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/quota/rm``."""

    role: str


class ReserveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/reservations/{reserve|unreserve}`` (unreserve without sizes: all of it)."""

    agent: str
    role: str
    cpus: float | None = None
    mem: float | None = None
    disk: float | None = None


def _check_role(role: str) -> None:
    if role == "*" or not ROLE_NAME.match(role):
        raise UsageError(f"bad role {role!r} (letters, digits, '_', '.', '-'; not '*')")


def _check_size(what: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise UsageError(f"{what} must be a number >= 0, not {value:g}")


def _res(sizes: dict[str, float]) -> Resources:
    return Resources(sizes.get("cpus", 0.0), sizes.get("mem", 0.0), sizes.get("disk", 0.0))


class RoleController:
    """Quota limits, weights and reservations: validated, applied to the allocator, saved."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.records: dict[str, RoleRecord] = {}
        self._configured = {name: cfg.weight for name, cfg in engine.cfg.roles.items()}

    def load(self) -> None:
        for data in self.engine.store.roles():
            rec = msgspec.json.decode(data, type=RoleRecord)
            for agent in list(rec.reserved):
                if agent not in self.engine.allocator.agents:
                    log.warning("agent %s is no longer configured: its reservation dropped", agent)
                    del rec.reserved[agent]
            self.records[rec.name] = rec
            self._apply(rec)

    # ---- state ----------------------------------------------------------------------------

    def _apply(self, rec: RoleRecord) -> None:
        alloc = self.engine.allocator
        state = alloc.role(rec.name)
        state.quota = dict(rec.quota)
        state.weight = rec.weight if rec.weight is not None else self._configured.get(rec.name, 1)
        for agent_id in alloc.agents:
            per_role = alloc.reservations.get(agent_id, {})
            if agent_id in rec.reserved:
                per_role[rec.name] = _res(rec.reserved[agent_id])
                alloc.reservations[agent_id] = per_role
            else:
                per_role.pop(rec.name, None)
                if not per_role:
                    alloc.reservations.pop(agent_id, None)

    def _save(self, rec: RoleRecord) -> None:
        empty = rec.weight is None and not rec.quota and not rec.reserved
        if empty:
            self.records.pop(rec.name, None)
        self.engine.store.put_role(rec.name, None if empty else msgspec.json.encode(rec))
        self._apply(rec)
        self.engine.request_cycle()  # waiting tasks may fit now (or say why not)

    def _record(self, role: str) -> RoleRecord:
        _check_role(role)
        return self.records.setdefault(role, RoleRecord(name=role))

    def view(self, role: str) -> RoleQuota:
        alloc = self.engine.allocator
        state = alloc.role(role)
        reserved = Resources()
        for per_role in alloc.reservations.values():
            reserved = reserved + per_role.get(role, Resources())
        return RoleQuota(
            role=role,
            weight=state.weight,
            limits=dict(state.quota),
            # what counts against the quota: tasks' allocations and the role's volumes' disk
            allocated=Resources(
                state.allocated.cpus,
                state.allocated.mem,
                state.allocated.disk + alloc.role_volumes(role),
            ),
            reserved=reserved,
            share=alloc.share(role),
            pending=self.engine.framework.demand().get(role, 0),
        )

    def list(self) -> list[RoleQuota]:
        alloc = self.engine.allocator
        names = set(self.records) | set(self.engine.framework.demand())
        names |= {n for n, s in alloc.roles.items() if s.allocated.cpus or s.allocated.mem}
        return [self.view(n) for n in sorted(names)]

    # ---- quota ----------------------------------------------------------------------------

    def set_quota(self, req: QuotaRequest) -> RoleQuota:
        for kind in QUOTA_KEYS:
            _check_size(f"quota {kind}", getattr(req, kind))
        if req.weight is not None and (not math.isfinite(req.weight) or req.weight <= 0):
            raise UsageError(f"weight must be a number > 0, not {req.weight:g}")
        if req.weight is None and all(getattr(req, k) is None for k in QUOTA_KEYS):
            raise UsageError("quota set: give at least one of cpus=, mem=, disk=, weight=")
        rec = self._record(req.role)
        for kind in QUOTA_KEYS:
            value = getattr(req, kind)
            if value is not None:
                rec.quota[kind] = value
        if req.weight is not None:
            rec.weight = req.weight
        self._save(rec)
        return self.view(rec.name)

    def remove_quota(self, req: RoleRequest) -> RoleQuota:
        """Drop the role's limits and weight (its reservations stay)."""
        _check_role(req.role)
        rec = self.records.get(req.role)
        if rec is None or (not rec.quota and rec.weight is None):
            raise NotFoundError(f"role {req.role!r} has no quota")
        rec.quota, rec.weight = {}, None
        self._save(rec)
        return self.view(req.role)

    # ---- reservations ---------------------------------------------------------------------

    def _agent(self, agent_id: str) -> None:
        agents = self.engine.allocator.agents
        if agent_id not in agents:
            raise NotFoundError(f"no agent {agent_id!r} (agents: {', '.join(sorted(agents))})")

    def reserve(self, req: ReserveRequest) -> RoleQuota:
        self._agent(req.agent)
        _check_role(req.role)
        sizes = {k: getattr(req, k) for k in QUOTA_KEYS if getattr(req, k) is not None}
        for kind, value in sizes.items():
            _check_size(f"reserve {kind}", value)
        if not any(v > 0 for v in sizes.values()):
            raise UsageError("reserve: give at least one of cpus=, mem=, disk= (> 0)")
        alloc = self.engine.allocator
        room = alloc.unreserved_free(req.agent)
        for kind, value in sizes.items():
            if value > getattr(room, kind) + 1e-9:
                raise UsageError(
                    f"reserve: {kind} {value:g} is more than {req.agent}'s unreserved, "
                    f"unallocated {kind} ({getattr(room, kind):g})"
                )
        rec = self._record(req.role)
        mine = rec.reserved.setdefault(req.agent, {})
        for kind, value in sizes.items():
            mine[kind] = mine.get(kind, 0.0) + value
        self._save(rec)
        return self.view(rec.name)

    def unreserve(self, req: ReserveRequest) -> RoleQuota:
        self._agent(req.agent)
        _check_role(req.role)
        rec = self.records.get(req.role)
        if rec is None or req.agent not in rec.reserved:
            raise NotFoundError(f"role {req.role!r} has no reservation on {req.agent}")
        mine = rec.reserved[req.agent]
        sizes = {k: getattr(req, k) for k in QUOTA_KEYS if getattr(req, k) is not None}
        for kind, value in sizes.items():
            _check_size(f"unreserve {kind}", value)
            if value > mine.get(kind, 0.0) + 1e-9:
                raise UsageError(
                    f"unreserve: {kind} {value:g} is more than reserved ({mine.get(kind, 0.0):g})"
                )
        if not sizes:
            del rec.reserved[req.agent]
        else:
            for kind, value in sizes.items():
                left = mine.get(kind, 0.0) - value
                if left > 1e-9:
                    mine[kind] = left
                else:
                    mine.pop(kind, None)
            if not mine:
                del rec.reserved[req.agent]
        self._save(rec)
        return self.view(rec.name)
