"""Shared helpers of the spec-loader tests: data paths and golden-file comparison.

Set ``DSHELL_UPDATE_GOLDEN=1`` to rewrite the golden files from the current output.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from conftest import require_service

HERE = Path(__file__).parent
DATA = HERE / "data"
BAD = HERE / "bad"
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("DSHELL_UPDATE_GOLDEN") == "1"

# Options a data file needs to load (Aurora bindings and job keys).
OPTIONS: dict[str, dict[str, object]] = {
    "profiles.aurora": {"bind": {"version": "2.1"}, "job_key": "local/alice/prod/api"},
}


def check_golden(name: str, actual: str) -> None:
    """Compare ``actual`` with ``golden/<name>`` (or write it under DSHELL_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"missing golden file {path}; run with DSHELL_UPDATE_GOLDEN=1")
    assert actual == path.read_text(encoding="utf-8"), f"output differs from {path}"


def need_pystachio(name: str = ".aurora") -> None:
    """Aurora files need pystachio: skip without it (fail in CI, where it must be installed)."""
    require_service(
        not name.endswith(".aurora") or importlib.util.find_spec("pystachio") is not None,
        "pystachio (a dependency in pyproject.toml) for Aurora specs",
    )
