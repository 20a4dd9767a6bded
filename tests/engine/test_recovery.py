"""Crash recovery: the three crash points, and kill -9 of the engine with 100 running tasks.

Each task appends one line to its own start log and exits with a distinct code once a flag
file appears, so the tests can tell a re-adopted task from a restarted one and check that the
exit code recorded is the real one.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from dshell.errors import UnreachableError
from dshell.model import TaskState

from dshell_local import control
from dshell_local.client import EngineClient

from .conftest import pid_alive, wait_until
from .helpers import sh

pytestmark = pytest.mark.engine

CRASH_ENV = "DSHELL_ENGINE_CRASH_POINT"


def worker(tmp: Path, name: str, code: int, trap: bool = False) -> str:
    """A task script: log the start, then exit ``code`` when ``flag`` exists (or on TERM)."""
    on_term = f"trap 'exit {code}' TERM; " if trap else ""
    return (
        f"{on_term}echo start >> {tmp}/{name}.starts; "
        f"while [ ! -e {tmp}/flag ]; do sleep 0.05; done; exit {code}"
    )


def starts(tmp: Path, name: str) -> int:
    try:
        return (tmp / f"{name}.starts").read_text().count("start")
    except FileNotFoundError:
        return 0


def by_name(client: EngineClient) -> dict[str, object]:
    return {t.name: t for t in client.list_tasks(all=True)}


def crash_and_restart(
    client: EngineClient, pid: int, monkeypatch: pytest.MonkeyPatch
) -> dict[str, int]:
    """Wait for the crash, restart without a crash point; the recovery outcome counts."""
    wait_until(lambda: not pid_alive(pid), what="the engine to crash")
    monkeypatch.delenv(CRASH_ENV)
    status = control.start()
    client.close()
    assert status is not None
    return status.recovery


def submit_quietly(client: EngineClient, script: str, name: str) -> None:
    try:
        client.submit(sh(script, name=name))
    except UnreachableError:
        pass  # the engine crashed while answering


@pytest.mark.parametrize("point", ["after_commit", "after_spawn"])
def test_crash_during_launch(
    point: str, tmp_path: Path, engine_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CRASH_ENV, f"{point}:3")
    status = control.start()
    assert status is not None
    client = control.client()
    codes = {"a": 11, "b": 12, "c": 13}
    for name in ("a", "b"):
        client.submit(sh(worker(tmp_path, name, codes[name]), name=name))
        wait_until(lambda n=name: starts(tmp_path, n) == 1, what=f"{name} to start")
    submit_quietly(client, worker(tmp_path, "c", codes["c"]), "c")
    recovered = crash_and_restart(client, status.pid, monkeypatch)
    # after_commit: c was committed, never spawned; after_spawn: spawned, pid not recorded
    expected = {"adopted": 2, "relaunched": 1} if point == "after_commit" else {"adopted": 3}
    assert recovered == expected
    wait_until(lambda: starts(tmp_path, "c") == 1, what="c to run")
    tasks = by_name(client)
    assert {n: tasks[n].state for n in codes} == {n: TaskState.RUNNING for n in codes}  # type: ignore[attr-defined]
    (tmp_path / "flag").touch()
    for name, code in codes.items():
        done = client.wait(tasks[name].id, 30)  # type: ignore[attr-defined]
        assert (done.state, done.exit_code) == (TaskState.FAILED, code)
        assert starts(tmp_path, name) == 1
        assert [h.state for h in done.history].count("RUNNING") == 1


def test_crash_while_killing(
    tmp_path: Path, engine_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CRASH_ENV, "while_killing")
    status = control.start()
    assert status is not None
    client = control.client()
    codes = {"a": 21, "b": 22, "c": 23}
    for name, code in codes.items():
        client.submit(sh(worker(tmp_path, name, code, trap=True), name=name))
    for name in codes:
        wait_until(lambda n=name: starts(tmp_path, n) == 1, what=f"{name} to start")
    tasks = by_name(client)
    try:
        client.kill(tasks["a"].id, grace=30)  # type: ignore[attr-defined]
    except UnreachableError:
        pass
    crash_and_restart(client, status.pid, monkeypatch)
    a = client.wait(tasks["a"].id, 30)  # type: ignore[attr-defined]
    assert (a.state, a.exit_code) == (TaskState.KILLED, 21)  # the TERM it got before the crash
    client.kill(tasks["b"].id, grace=30)  # type: ignore[attr-defined]
    b = client.wait(tasks["b"].id, 30)  # type: ignore[attr-defined]
    assert (b.state, b.exit_code) == (TaskState.KILLED, 22)
    (tmp_path / "flag").touch()
    c = client.wait(tasks["c"].id, 30)  # type: ignore[attr-defined]
    assert (c.state, c.exit_code) == (TaskState.FAILED, 23)
    assert all(starts(tmp_path, n) == 1 for n in codes)


def test_kill_9_with_100_tasks_some_ending_during_the_outage(
    engine: EngineClient, tmp_path: Path
) -> None:
    (tmp_path / "short").mkdir()
    (tmp_path / "long").mkdir()
    short = [
        engine.submit(sh(worker(tmp_path / "short", f"s{i}", 30 + i), name=f"s{i}"))[0]
        for i in range(50)
    ]
    long_ = [
        engine.submit(sh(worker(tmp_path / "long", f"l{i}", 0), name=f"l{i}"))[0] for i in range(50)
    ]
    every = short + long_
    wait_until(
        lambda: all(engine.get_task(t.id).state is TaskState.RUNNING for t in every),
        timeout=60,
        what="100 running tasks",
    )
    pids = {t.id: engine.get_task(t.id).pid for t in every}
    status = engine.status()
    os.kill(status.pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(status.pid), what="the engine to die")
    (tmp_path / "short" / "flag").touch()  # half of them end while no engine runs
    wait_until(lambda: not any(pid_alive(pids[t.id] or 0) for t in short), what="exits")
    engine.close()
    restarted = control.start()
    assert restarted is not None and restarted.pid != status.pid
    assert restarted.recovery == {"adopted": 50, "exited": 50}
    for i, t in enumerate(short):
        done = engine.get_task(t.id)
        assert (done.state, done.exit_code) == (TaskState.FAILED, 30 + i)
        assert starts(tmp_path / "short", f"s{i}") == 1
    for i, t in enumerate(long_):
        alive = engine.get_task(t.id)
        assert alive.state is TaskState.RUNNING and alive.pid == pids[t.id]
        assert starts(tmp_path / "long", f"l{i}") == 1
    (tmp_path / "long" / "flag").touch()
    for t in long_:
        assert engine.wait(t.id, 60).state is TaskState.FINISHED


def test_executor_killed_engine_reconnects_and_reconciles(
    engine: EngineClient, tmp_path: Path
) -> None:
    keep = engine.submit(sh(worker(tmp_path, "keep", 0), name="keep"))[0]
    wait_until(lambda: engine.get_task(keep.id).state is TaskState.RUNNING)
    old = engine.status().executor.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: engine.status().executor.pid not in (None, old), what="a new executor")
    alive = engine.get_task(keep.id)
    assert alive.state is TaskState.RUNNING and starts(tmp_path, "keep") == 1
    engine.kill(keep.id, grace=0.5)
    done = engine.wait(keep.id, 30)
    assert done.state is TaskState.KILLED  # its status is gone with the old executor
    fresh = engine.submit(sh("exit 4"))[0]
    assert engine.wait(fresh.id, 30).exit_code == 4
