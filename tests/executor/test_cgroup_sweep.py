"""A starting executor removes the cgroup trees of executors that are gone (cgroups.py,
"Ownership"), and only those: not a live executor's, not one still holding a process, not an
unmarked one younger than the grace period."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from dshell_local.executor import procfs
from dshell_local.executor.cgdiscover import discover

from .conftest import Executor, need_cgroups


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def homes() -> Iterator[list[str]]:
    """The executor's home directory in each hierarchy; strays made by the test are removed."""
    need_cgroups()
    found = discover(f"dshell-zzprobe{os.getpid()}")
    homes = [os.path.dirname(h.parent) for h in found.hierarchies]
    for h in found.hierarchies:
        os.rmdir(h.parent)
    yield homes
    for home in homes:
        for name in os.listdir(home):
            if name.startswith(f"dshell-zz{os.getpid()}"):
                for root, dirs, _ in sorted(os.walk(os.path.join(home, name)), reverse=True):
                    for d in dirs:
                        os.rmdir(os.path.join(root, d))
                os.rmdir(os.path.join(home, name))


def test_parents_of_gone_executors_are_removed_and_no_others(
    homes: list[str], make_executor: Callable[..., Executor]
) -> None:
    tag = f"dshell-zz{os.getpid()}"
    me = procfs.read_stat(os.getpid())
    assert me is not None
    marks = {
        "dead": f"owner-{_dead_pid()}-0",
        "live": f"owner-{os.getpid()}-{me.start_time}",
        "busy": f"owner-{_dead_pid()}-0",
        "young": None,
        "old": None,
    }
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        for home in homes:
            for kind, mark in marks.items():
                parent = os.path.join(home, f"{tag}-{kind}")
                for sub in ("spare-0", "task-x", *([mark] if mark else [])):
                    os.makedirs(os.path.join(parent, sub))
                if kind == "old":
                    os.utime(parent, (time.time() - 3600, time.time() - 3600))
            busy = os.path.join(home, f"{tag}-busy", "task-x")
            with open(os.path.join(busy, "cgroup.procs"), "w", encoding="ascii") as f:
                f.write(str(sleeper.pid))
        make_executor()  # starts, claims its own parents, sweeps the siblings
        for home in homes:
            left = sorted(n.rpartition("-")[2] for n in os.listdir(home) if n.startswith(tag))
            assert left == ["busy", "live", "young"], home
    finally:
        sleeper.kill()
        sleeper.wait()
