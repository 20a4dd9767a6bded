"""Fixtures for the engine tests: private dirs per test, and a real engine daemon.

Every test gets its own config, state and (short) runtime dir; the ``engine`` fixture starts
the daemon there and, in teardown, kills its tasks and stops the engine and the executor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dshell.testing.fixtures import stop_local_engine

from conftest import pid_alive, require_service, sandbox_pids  # noqa: F401 (pid_alive: for the tests)
from dshell_local import control
from dshell_local.client import EngineClient


def need(condition: bool, reason: str) -> None:
    """Skip locally when the machine lacks something; in CI a missing service fails."""
    require_service(condition, reason)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def kill_leftover_tasks(state: Path) -> None:
    """Last resort: SIGKILL every process whose sandbox lies in this test's state dir.

    A test that kills the engine and then fails leaves tasks no engine will stop; they must
    not outlive the test (they would load the machine for every later test).
    """
    for pid in sandbox_pids(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


stop_everything = stop_local_engine


@pytest.fixture(autouse=True)
def engine_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Own config/state dirs, and a short runtime dir (Unix socket paths are short)."""
    runtime = Path(tempfile.mkdtemp(prefix="de", dir="/tmp"))
    monkeypatch.setenv("DSHELL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("DSHELL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DSHELL_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("DSHELL_ENGINE_CONFIG", raising=False)
    monkeypatch.delenv("DSHELL_ENGINE_CRASH_POINT", raising=False)
    (tmp_path / "config").mkdir()
    yield runtime
    stop_everything(runtime)
    kill_leftover_tasks(tmp_path / "state")
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def engine_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write ``engine.toml`` in the test's config dir."""

    def write(text: str) -> Path:
        path = tmp_path / "config" / "engine.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def engine(engine_dirs: Path) -> Iterator[EngineClient]:
    """A running engine daemon and a client of it."""
    control.start()
    client = control.client()
    yield client
    client.close()
