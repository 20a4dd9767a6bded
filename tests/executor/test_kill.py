"""Signals, sweeps (including escaping daemons), OOM detection and the pids limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from dshell_local.executor import procfs

from .conftest import Executor, wait_until

# Double-forks, calls setsid and ignores SIGTERM at every level; writes its pids to "pids".
ESCAPER = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.setsid()
        with open("pids", "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1000)
    os._exit(0)
with open("pids", "a") as f:
    f.write(f"{os.getpid()}\n")
time.sleep(1000)
"""


FORKER = r"""
import os, time
n = 0
try:
    for _ in range(8):
        if os.fork() == 0:
            time.sleep(1000)
            os._exit(0)
        n += 1
except BlockingIOError:
    print(n, "EAGAIN", flush=True)
time.sleep(1000)
"""


def _carriers(task_id: str) -> list[int]:
    return procfs.pids_with_env("DSHELL_TASK_ID", task_id)


def test_signal_goes_to_the_group(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    ex.spawn("grp", ["/bin/sh", "-c", "sleep 1000 & wait"])
    tid = ex.task_id("grp")
    wait_until(lambda: len(_carriers(tid)) == 2, what="sh and its sleep")
    assert c.call("signal", task_id=tid, signal="TERM")["delivered"] is True
    ev = c.wait_exited(tid)
    assert ev["signal"] == signal.SIGTERM and ev["exit_code"] is None
    wait_until(lambda: not _carriers(tid), what="the group to die")
    assert c.call("signal", task_id=tid, signal=9)["delivered"] is False  # already exited


def test_sweep_kills_double_forking_setsid_daemons(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    sb = ex.sandbox("esc")
    with open(os.path.join(sb, "escaper.py"), "w", encoding="utf-8") as f:
        f.write(ESCAPER)
    tid = ex.task_id("esc")
    leader = ex.spawn("esc", [sys.executable, "escaper.py"])["pid"]

    def pids_written() -> list[int]:
        try:
            with open(os.path.join(sb, "pids"), encoding="ascii") as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    written = wait_until(lambda: len(pids_written()) == 2 and pids_written(), what="the pids")
    (daemon,) = set(written) - {leader}
    st = procfs.read_stat(daemon)
    assert st is not None and st.session == daemon  # it escaped the task's session
    assert st.ppid == ex.pid  # orphaned: re-parented to the executor, a child subreaper
    c.call("signal", task_id=tid, signal="TERM")  # ignored everywhere
    res = c.call("sweep", task_id=tid)
    assert res["remaining"] == 0 and res["killed"] >= 2
    assert _carriers(tid) == []  # nothing carrying the task's id survives
    ev = c.wait_exited(tid)
    assert ev["signal"] == signal.SIGKILL and ev["oom"] is False


def test_oom_is_reported_from_the_kernel_counter(executor: Executor) -> None:
    ex = executor
    c = ex.client
    assert c is not None
    hog = [sys.executable, "-c", "x = b'a' * (200 << 20); print('survived')"]
    ex.spawn("hog", hog, limits={"mem_mb": 32})
    ev = c.wait_exited(ex.task_id("hog"))
    assert ev["oom"] is True and ev["signal"] == signal.SIGKILL
    assert "survived" not in ex.read("hog")


def test_outside_sigkill_is_not_oom(executor: Executor) -> None:
    ex = executor
    c = ex.client
    assert c is not None
    res = ex.spawn("victim", ["sleep", "1000"], limits={"mem_mb": 32})
    os.kill(res["pid"], signal.SIGKILL)
    ev = c.wait_exited(ex.task_id("victim"))
    assert ev["signal"] == signal.SIGKILL and ev["oom"] is False


def test_pids_limit(executor: Executor) -> None:
    ex = executor
    c = ex.client
    assert c is not None
    ex.spawn("pids", [sys.executable, "-c", FORKER], limits={"pids": 4})
    tid = ex.task_id("pids")
    wait_until(lambda: ex.read("pids").strip(), what="the fork loop to end")
    assert ex.read("pids").split() == ["3", "EAGAIN"]  # 3 children, then fork failed
    (paths,) = [c.call("cgroup_paths", task_id=tid)["paths"]]
    pids_dir = next(p for p in paths if "/pids/" in p)
    with open(os.path.join(pids_dir, "pids.max"), encoding="ascii") as f:
        assert f.read().strip() == "4"
    stats = {s["task_id"]: s for s in c.call("stats")["tasks"]}
    assert stats[tid]["nprocs"] == 4  # sh + 3 sleeps; the executor left after spawning
    assert c.call("sweep", task_id=tid)["remaining"] == 0


def test_limits_are_written(executor: Executor) -> None:
    ex = executor
    c = ex.client
    assert c is not None
    # floats, as an engine keeping Mesos-style resources sends them
    ex.spawn("lim", ["sleep", "1000"], limits={"mem_mb": 64.0, "cpus": 0.5, "pids": 10.0})
    paths = c.call("cgroup_paths", task_id=ex.task_id("lim"))["paths"]
    files = {}
    for p in paths:
        for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cpu.cfs_quota_us"):
            if os.path.exists(os.path.join(p, name)):
                with open(os.path.join(p, name), encoding="ascii") as f:
                    files[name] = int(f.read())
    assert files["memory.limit_in_bytes"] == 64 << 20
    if "memory.memsw.limit_in_bytes" in files:  # swap accounting on: limited when swap is
        swap_on = len(Path("/proc/swaps").read_text().strip().splitlines()) > 1
        assert (files["memory.memsw.limit_in_bytes"] == 64 << 20) is swap_on
    assert files["cpu.cfs_quota_us"] == 50_000
    pids_dir = next(p for p in paths if "/pids/" in p)
    with open(os.path.join(pids_dir, "pids.max"), encoding="ascii") as f:
        assert f.read().strip() == "10"
    # hierarchies are created on demand: without cpu/pids limits, memory and cpuacct only
    ex.spawn("bare", ["sleep", "1000"])
    bare = c.call("cgroup_paths", task_id=ex.task_id("bare"))["paths"]
    assert sorted(p.split("/")[4] for p in bare) == ["cpuacct", "memory"]


def test_join_and_cgroup_paths(executor: Executor) -> None:
    ex = executor
    c = ex.client
    assert c is not None
    ex.spawn("host", ["sleep", "1000"], limits={"cpus": 1, "pids": 100})
    tid = ex.task_id("host")
    env = {"PATH": "/bin:/usr/bin", "DSHELL_TASK_ID": tid}
    helper = subprocess.Popen(["sleep", "1000"], env=env, start_new_session=True)
    try:
        joined = c.call("join", task_id=tid, pid=helper.pid)["controllers"]
        assert set(joined) == {"memory", "cpu", "cpuacct", "pids"}
        with open(f"/proc/{helper.pid}/cgroup", encoding="ascii") as f:
            assert f.read().count(f"task-{tid}") >= 3
        assert c.call("sweep", task_id=tid)["remaining"] == 0  # the joined process goes too
        assert helper.wait(10) == -signal.SIGKILL
    finally:
        helper.kill()
        helper.wait()


def test_rlimit_fallback_sets_address_space(make_executor) -> None:  # type: ignore[no-untyped-def]
    ex = make_executor(isolation="rlimit")
    c = ex.client
    assert c.hello["isolation"]["kind"] == "rlimit"
    assert "RLIMIT_AS" in c.hello["isolation"]["detail"]
    res = ex.spawn("rl", ["sleep", "1000"], limits={"mem_mb": 64})
    with open(f"/proc/{res['pid']}/limits", encoding="ascii") as f:
        line = next(ln for ln in f if ln.startswith("Max address space"))
    assert line.split()[3] == str(64 << 20)
    assert c.call("cgroup_paths", task_id=ex.task_id("rl"))["paths"] == []
    stats = c.call("stats")["tasks"]
    assert stats[0]["nprocs"] == 1 and stats[0]["rss_bytes"] > 0


def test_pids_limit_of_one(executor: Executor) -> None:
    """pids.max 1: the spawn itself must work (the executor counts while inside), forks not."""
    ex = executor
    assert ex.client is not None
    ex.spawn("one", [sys.executable, "-c", FORKER], limits={"pids": 1})
    wait_until(lambda: ex.read("one").strip(), what="the fork attempt")
    assert ex.read("one").split() == ["0", "EAGAIN"]
    assert ex.client.call("sweep", task_id=ex.task_id("one"))["remaining"] == 0


def _spares(parent: str) -> set[str]:
    return {e.name for e in os.scandir(parent) if e.name.startswith("spare-")}


def test_task_groups_are_removed_and_an_older_pool_is_cleared_at_start(
    executor: Executor,
) -> None:
    """Every task group is made and removed (no reuse pool: see executor/cgroups.py), and the
    ``spare-N`` groups an older executor kept are removed when the next executor starts."""
    ex = executor
    c = ex.client
    assert c is not None
    burn = [sys.executable, "-c", "sum(range(300_000))"]
    ex.spawn("first", burn, limits={"mem_mb": 64, "cpus": 0.5, "pids": 10})
    first = ex.task_id("first")
    paths = c.call("cgroup_paths", task_id=first)["paths"]
    assert len(paths) == 4 and all(os.path.isdir(p) for p in paths)
    c.wait_exited(first)
    c.call("ack", task_ids=[first])
    wait_until(lambda: not any(os.path.exists(p) for p in paths), what="the groups removed")
    parents = {os.path.dirname(p) for p in paths}
    assert all(_spares(p) == set() for p in parents)

    # an older executor's pool, left in the parents (and one group still holding a process
    # would not be a spare: spares are empty by construction)
    ex.spawn("left", ["sleep", "1000"], limits={"mem_mb": 32})  # keeps the parents alive
    for parent in parents:
        os.mkdir(os.path.join(parent, "spare-7"))
    assert ex.stop() == 0
    ex.start()
    assert all(_spares(p) == set() for p in parents)
    assert ex.client is not None
    assert ex.client.call("sweep", task_id=ex.task_id("left"))["remaining"] == 0
