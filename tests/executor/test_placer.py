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

import msgspec
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
        self.tids: set[int] = set()

    def use_thread(self, tid: int) -> None:
        self.tids.add(tid)

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
    def __init__(self, parallel: bool) -> None:
        self.threads: list[int] = []
        self.parallel = parallel  # whether two threads may spawn at once (cspawn)

    def spawn(self, spec: SpawnSpec) -> Spawned:
        self.threads.append(threading.get_native_id())
        return Spawned(os.posix_spawn("/bin/true", ["/bin/true"], {}), None, None)


@pytest.mark.parametrize("parallel", [False, True])
def test_tasks_are_placed_and_spawned_off_the_main_thread(
    parallel: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # spawn_many leaves the process in /; restored after the test
    cg, spawner = FakeCgroups(), FakeSpawner(parallel)
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
    assert placing == cg.tids and main not in placing  # the placing threads, not the main one
    assert len(placing) == (2 if parallel else 1)
    assert set(spawner.threads) == placing
    for tid in placing:  # each goes home at the end of its share of the batch
        assert [step for step, t in cg.steps if t == tid][-1] == "leave"
    assert os.getcwd() == "/"  # the sandbox was left (the cwd is the process's)
    # a batch with a tty task is placed by one thread: its spawn chdirs the whole process
    cg.steps.clear()
    tty = [
        msgspec.structs.replace(spec, task_id=f"y{i}", tty=i == 1) for i, spec in enumerate(specs)
    ]
    for item in mgr.spawn_many(tty):
        os.waitpid(item.pid or 0, 0)
    assert len({tid for step, tid in cg.steps if step == "enter"}) == 1


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
        ex.spec(n, ["sh", "-c", "cat /proc/self/cgroup > cg.new && mv cg.new cg; exec sleep 60"],
                limits={"mem_mb": 64, "cpus": 0.5, "pids": 16})
        for n in names
    ]  # fmt: skip
    results = ex.client.call("spawn_batch", tasks=specs)["results"]
    assert all(r["ok"] for r in results), results
    for name in names:
        path = os.path.join(ex.dir, "sb", name, "cg")
        wait_until(lambda p=path: os.path.exists(p), 10, "cg")  # type: ignore[misc]  # whole: mv
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
