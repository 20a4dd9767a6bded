"""Shared test setup: dshell's own fixtures (dshell.testing.fixtures) load as a pytest plugin."""

from __future__ import annotations

import os

import pytest


def require_service(ok: bool, what: str) -> None:
    """In CI (CI=true) a missing service fails the test; elsewhere it is skipped with a reason."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service missing in CI: {what}")
    pytest.skip(f"service not available here: {what}")
