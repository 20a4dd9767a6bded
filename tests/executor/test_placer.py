"""Tasks are placed from a thread that is not the executor's main thread (cgroup v1).

The main thread is the process's memory owner: while it sat in a task's memory cgroup, the
executor's own pages were charged to that task, and the task's OOM killer could pick the
executor. What is checked here is where each cgroup step runs and which thread id the
cgroups are given (a fake cgroup object records it); the moves themselves are the real
executor's, tested in test_cgroups and test_cgroup_order.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from dshell_local.executor.cgroups import TaskCgroup
from dshell_local.executor.journal import Journal
from dshell_local.executor.loop import Loop
from dshell_local.executor.protocol import Limits, SpawnSpec
from dshell_local.executor.spawner import Spawned
from dshell_local.executor.tasks import TaskManager

from .conftest import wait_until


class FakeCgroups:
    """What TaskManager asks of its cgroups, recording the thread of every step."""

    v2 = False

    def __init__(self) -> None:
        self.steps: list[tuple[str, int]] = []
        self.tid: int | None = None

    def use_thread(self, tid: int) -> None:
        self.tid = tid

    def task_cgroup(self, task_id: str, limits: Limits | None = None) -> TaskCgroup:
        return TaskCgroup({"memory": f"/fake/task-{task_id}"})

    def _step(self, name: str, *_: Any) -> None:
        self.steps.append((name, threading.get_native_id()))

    def create(self, *args: Any) -> None:
        self._step("create")

    def enter(self, *args: Any) -> None:
        self._step("enter")

    def settle(self, *args: Any) -> None:
        self._step("settle")

    def leave(self) -> None:
        self._step("leave")

    def remove(self, *args: Any) -> bool:
        return True


class FakeSpawner:
    def __init__(self) -> None:
        self.threads: list[int] = []

    def spawn(self, spec: SpawnSpec) -> Spawned:
        self.threads.append(threading.get_native_id())
        return Spawned(os.posix_spawn("/bin/true", ["/bin/true"], {}), None, None)


def test_tasks_are_placed_and_spawned_off_the_main_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # spawn_many leaves the process in /; restored after the test
    cg, spawner = FakeCgroups(), FakeSpawner()
    mgr = TaskManager(Loop(), cg, Journal(str(tmp_path)), "boot", spawner, lambda _e: None)  # type: ignore[arg-type]
    main = threading.get_native_id()
    specs = [
        SpawnSpec(task_id=f"t{i}", argv=["true"], env={}, cwd=str(tmp_path),
                  stdout=str(tmp_path / "out"), stderr=str(tmp_path / "err"),
                  limits=Limits(mem_mb=64))
        for i in range(3)
    ]  # fmt: skip
    items = mgr.spawn_many(specs)
    for item in items:
        os.waitpid(item.pid or 0, 0)
    assert all(item.ok for item in items)
    placing = {tid for step, tid in cg.steps if step in ("enter", "settle", "leave")}
    assert placing == {cg.tid} and cg.tid != main  # one thread, and not the main one
    assert set(spawner.threads) == {cg.tid}
    assert [step for step, _ in cg.steps][-1] == "leave"  # home at the end of the batch
    assert os.getcwd() == "/"  # the sandbox was left (the cwd is the process's)


def _cgroups_of(path: str) -> dict[str, str]:
    """controller -> cgroup path, from a /proc/.../cgroup file (v1 lines)."""
    out: dict[str, str] = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            _, ctls, where = line.rstrip("\n").split(":", 2)
            for ctl in ctls.split(","):
                out[ctl] = where
    return out


def test_a_real_batch_places_each_task_and_every_thread_goes_home(executor: Any) -> None:
    """On a real cgroup v1 executor: the placing thread moves itself (writing "0" into the
    ``tasks`` files) into each task's four groups, so each task is born inside them, and
    after the batch no thread of the executor is left in a task's group."""
    ex = executor
    home = {
        t: _cgroups_of(f"/proc/{ex.pid}/task/{t}/cgroup")
        for t in os.listdir(f"/proc/{ex.pid}/task")
    }
    names = [f"b{i}" for i in range(6)]
    specs = [
        ex.spec(n, ["sh", "-c", "cat /proc/self/cgroup > cg; exec sleep 60"],
                limits={"mem_mb": 64, "cpus": 0.5, "pids": 16})
        for n in names
    ]  # fmt: skip
    results = ex.client.call("spawn_batch", tasks=specs)["results"]
    assert all(r["ok"] for r in results), results
    for name in names:
        path = os.path.join(ex.dir, "sb", name, "cg")
        wait_until(lambda p=path: os.path.exists(p) and os.path.getsize(p) > 0, 10, "cg")  # type: ignore[misc]
        placed = _cgroups_of(path)
        for ctl in ("memory", "cpu", "cpuacct", "pids"):
            assert placed[ctl].endswith(f"/task-{ex.task_id(name)}"), (ctl, placed[ctl])
    for tid in os.listdir(f"/proc/{ex.pid}/task"):
        now = _cgroups_of(f"/proc/{ex.pid}/task/{tid}/cgroup")
        assert not any("/task-" in where for where in now.values()), (tid, now)
        if tid in home:
            assert now == home[tid]
    for name in names:
        ex.client.call("sweep", task_id=ex.task_id(name))
