"""Request bodies of the maintenance endpoints (``/v1/agents/*``, ``/v1/maintenance/*``)."""

from __future__ import annotations

import msgspec


class DrainRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/agents/drain``: Mesos DRAIN_AGENT (``max_grace``: its max_grace_period)."""

    agent: str
    max_grace: float | None = None
    reason: str | None = None


class AgentRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/agents/up``."""

    agent: str


class AttributesRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/agents/attributes``: set some attributes, remove others."""

    agent: str
    set: dict[str, str] = {}
    unset: list[str] = []


class ScheduleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/maintenance/schedule``: ``start`` (epoch seconds) or ``start_in`` (seconds
    from the engine's now), and ``duration`` (seconds)."""

    agent: str
    duration: float
    start: float | None = None
    start_in: float | None = None


class CancelRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/maintenance/cancel``: the agent's next window, or ``all`` of them."""

    agent: str
    all: bool = False
