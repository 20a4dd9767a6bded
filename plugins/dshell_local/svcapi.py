"""Wire types of the engine's services API (``/v1/services``), shared with the CLI's client.

Kept apart from :mod:`dshell_local.api` so that commands other than ``svc`` do not import the
spec model. ``docs/engine-api.md`` describes the endpoints.
"""

from __future__ import annotations

import msgspec
from dshell.model import PlanItem
from dshell.specs.model import GroupSpec, ServiceSpec

__all__ = ["DeployRequest", "PlanItem", "ServiceCall"]


class DeployRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/services/deploy``: services and groups, all validated before any change."""

    services: list[ServiceSpec] = []
    groups: list[GroupSpec] = []
    force: bool = False
    dry_run: bool = False
    rollback_on_failure: bool = False


class ServiceCall(msgspec.Struct, kw_only=True):
    """``POST /v1/services/{verb}``: the arguments of one service verb."""

    name: str
    instances: int | None = None
    to_version: str | None = None
    task_id: str | None = None
    force: bool = False
    until: str = "deployed"  # wait: deployed | healthy | removed | stopped
    timeout: float | None = None
