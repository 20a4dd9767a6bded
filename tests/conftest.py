"""Shared test setup: dshell's own fixtures (dshell.testing.fixtures) load as a pytest plugin."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def require_service(ok: bool, what: str) -> None:
    """In CI (CI=true) a missing service fails the test; elsewhere it is skipped with a reason."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service missing in CI: {what}")
    pytest.skip(f"service not available here: {what}")


SERVICES_SH = Path(__file__).resolve().parent / "services" / "services.sh"


def run_services(
    svc_dir: str, script: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (the tests' own constant text) with services.sh sourced, SVC=svc_dir."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "$0"; {script}', str(SERVICES_SH)],
        env={**os.environ, "SVC": svc_dir},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
