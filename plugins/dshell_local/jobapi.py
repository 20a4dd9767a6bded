"""Wire types of the engine's batch jobs API (``/v1/jobs``), shared with the CLI's client.

Kept apart from :mod:`dshell_local.api` so that other commands do not import the spec model.
``docs/engine-api.md`` describes the endpoints.
"""

from __future__ import annotations

import msgspec
from dshell.specs.model import BatchJobSpec

__all__ = ["JobCall", "JobCreate"]


class JobCreate(msgspec.Struct, kw_only=True):
    """``POST /v1/jobs/create``: jobs, every one validated before any is stored.
    ``replace``: an existing job of the same name gets the new spec (its runs are kept)."""

    jobs: list[BatchJobSpec] = []
    replace: bool = False


class JobCall(msgspec.Struct, kw_only=True):
    """``POST /v1/jobs/{verb}``: the arguments of one job verb."""

    name: str
    run: int | None = None  # kill: that run only
    limit: int | None = None  # history: the newest N runs
