"""The order of the executor's cgroup writes around a spawn, on a fake cgroupfs (plain files).

What is checked here cannot be seen from outside a real executor: inside a batch the executor
hops from one task's groups to the next without going home, so whether it still sits in a
task's cpu group when that group's quota is written only shows in the sequence of writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dshell_local.executor import cgroups
from dshell_local.executor.cgdiscover import Discovery, Hierarchy
from dshell_local.executor.protocol import Limits


def _fake_v1(tmp_path: Path) -> cgroups.Cgroups:
    hier = []
    for ctl in ("cpu", "cpuacct", "memory", "pids"):
        home = tmp_path / ctl
        (home / "dshell-t").mkdir(parents=True)
        (home / "tasks").write_text("")
        hier.append(Hierarchy((ctl,), str(home), str(home / "dshell-t")))
    cg = cgroups.Cgroups(Discovery("cgroup-v1", hier, "fake"))
    return cg


def test_the_quota_is_written_after_the_executor_left_the_cpu_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cg = _fake_v1(tmp_path)
    limits = Limits(mem_mb=64, cpus=0.001, pids=10)
    tc = cg.task_cgroup("t1", limits)
    for d in tc.dirs():  # the task's groups as create() left them (not under test here)
        Path(d).mkdir()
        for name in ("tasks", "cpu.cfs_quota_us", "pids.max"):
            Path(d, name).write_text("")
    writes: list[tuple[str, bytes]] = []
    real_write = os.write

    def record(fd: int, data: bytes) -> int:
        writes.append((os.readlink(f"/proc/self/fd/{fd}"), bytes(data)))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", record)
    cg.enter(tc)
    cg.settle(tc, limits)  # the spawn happens between these two
    monkeypatch.undo()
    tid = str(os.getpid()).encode()
    targets = [path.removeprefix(str(tmp_path) + "/") for path, _ in writes]
    assert targets.index("cpu/dshell-t/task-t1/tasks") < targets.index("cpu/tasks")
    assert targets.index("cpu/tasks") < targets.index("cpu/dshell-t/task-t1/cpu.cfs_quota_us")
    assert dict(zip(targets, (data for _, data in writes), strict=True))["cpu/tasks"] == tid
    # the other hierarchies are left at the end of the batch (leave), not per task
    assert "memory/tasks" not in targets and "pids/tasks" not in targets
    cg.close(remove_parents=False)
