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

from conftest import pid_alive, require_service, sandbox_pids
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


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_leftover_tasks(state: Path) -> None:
    """Last resort: SIGKILL every process whose sandbox lies in this test's state dir.

    A test that kills the engine and then fails leaves tasks no engine will stop; they must
    not outlive the test (they would load the machine for every later test).
    """
    for pid in sandbox_pids(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_everything(runtime: Path) -> None:
    """Kill the engine's tasks, stop the engine, then the executor (bounded)."""
    with contextlib.suppress(Exception):
        control.stop(kill_tasks=True, timeout=60)
    for name in ("engine.pid", "executor.lock"):
        pid = _pid_in(runtime / name)
        if pid is None or not pid_alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


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
