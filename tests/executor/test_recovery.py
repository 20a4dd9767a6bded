"""Crash recovery: the executor outlives the engine, and a restarted executor re-adopts tasks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from dshell_local.executor import procfs
from dshell_local.executor.cgdiscover import discover
from dshell_local.executor.sync_client import SyncExecutorClient

from .conftest import Executor, wait_until


def _dead(pid: int) -> bool:
    st = procfs.read_stat(pid)
    return st is None or st.state == "Z"


def test_restarted_executor_readopts_live_tasks(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    live = ex.spawn("live", ["sleep", "1000"])
    ex.spawn("before", ["/bin/sh", "-c", "exit 4"])
    during = ex.spawn("during", ["sleep", "1000"])
    c.wait_exited(ex.task_id("before"))  # exited (and reported) before the crash, not acked

    ex.kill9()
    os.kill(during["pid"], signal.SIGKILL)  # ends while no executor is watching
    wait_until(lambda: _dead(during["pid"]), what="the task to die during the outage")
    c = ex.start()

    tasks = {t["task_id"]: t for t in c.call("list")["tasks"]}
    assert tasks[ex.task_id("live")]["running"] is True
    assert tasks[ex.task_id("live")]["pid"] == live["pid"]
    assert tasks[ex.task_id("before")]["exit_code"] == 4
    lost = tasks[ex.task_id("during")]
    assert (lost["running"], lost["lost"], lost["exit_code"]) == (False, True, None)

    again = ex.spawn("live", ["/bin/false"])  # exactly-once: still the same process
    assert again["existing"] is True and again["pid"] == live["pid"]

    os.kill(live["pid"], signal.SIGKILL)  # not our child any more: watched through a pidfd
    ev = c.wait_exited(ex.task_id("live"))
    assert (ev["lost"], ev["exit_code"], ev["pid"]) == (True, None, live["pid"])
    res = c.call("ack", task_ids=list(tasks))
    assert sorted(res["forgotten"]) == sorted(tasks)


def test_readopted_task_can_be_swept(executor: Executor) -> None:
    ex = executor
    res = ex.spawn("sw", ["/bin/sh", "-c", "sleep 1000 & sleep 1000"])
    ex.kill9()
    c = ex.start()
    tid = ex.task_id("sw")
    assert c.call("sweep", task_id=tid)["remaining"] == 0
    ev = c.wait_exited(tid)
    assert ev["lost"] is True and ev["pid"] == res["pid"]
    assert procfs.pids_with_env("DSHELL_TASK_ID", tid) == []


def test_unconfirmed_launch_is_found_not_restarted(any_executor: Executor) -> None:
    """A crash between the journal's intent and started lines: the restarted executor finds
    the process (its cgroup, or DSHELL_TASK_ID) instead of launching it a second time."""
    ex = any_executor
    res = ex.spawn("unc", ["sleep", "1000"])
    ex.kill9()
    logs = [n for n in os.listdir(ex.dir) if n.startswith("executor-tasks.") and n.endswith(".log")]
    (log,) = logs
    path = os.path.join(ex.dir, log)
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f if json.loads(ln)["type"] != "started"]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    c = ex.start()
    (task,) = c.call("list")["tasks"]
    assert task["running"] is True and task["pid"] == res["pid"]
    assert task["start_time"] == res["start_time"]


ENGINE = textwrap.dedent(
    """
    import asyncio, os, sys
    from dshell_local.executor.client import ExecutorClient
    from dshell_local.executor.protocol import SpawnSpec

    async def main():
        rdir, cg, sb = sys.argv[1:4]
        c = await ExecutorClient.connect(rdir, cg, rdir + "/executor.log", idle_exit=0)
        env = {"PATH": "/bin:/usr/bin", "DSHELL_TASK_ID": cg + "-t"}
        r = await c.spawn(SpawnSpec(task_id=cg + "-t", argv=["sleep", "1000"], env=env, cwd=sb,
                                    stdout=sb + "/out", stderr=sb + "/err"))
        print(c.info.executor_pid, r.pid, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def test_executor_survives_engine_kill9(make_executor) -> None:  # type: ignore[no-untyped-def]
    ex: Executor = make_executor(start=False)
    sb = ex.sandbox("t")
    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE, ex.dir, ex.cgroup_name, sb], stdout=subprocess.PIPE
    )
    assert engine.stdout is not None
    executor_pid, task_pid = map(int, engine.stdout.readline().split())
    try:
        engine.kill()  # kill -9 of the engine
        engine.wait(10)
        assert not _dead(executor_pid)
        os.kill(task_pid, signal.SIGKILL)  # an exit while no engine is connected
        with SyncExecutorClient.connect(ex.dir) as c:  # a restarted engine learns the exit
            assert c.hello["executor_pid"] == executor_pid
            wait_until(lambda: not c.call("list")["tasks"][0]["running"], what="the exit")
            (task,) = c.call("list")["tasks"]
            assert (task["signal"], task["lost"], task["oom"]) == (9, False, False)
            c.call("ack", task_ids=[task["task_id"]])
    finally:
        os.kill(executor_pid, signal.SIGTERM)
        wait_until(lambda: _dead(executor_pid), what="the detached executor to stop")


def test_process_setup(any_executor: Executor) -> None:
    ex = any_executor
    st = os.stat(os.path.join(ex.dir, "executor.sock"))
    assert st.st_mode & 0o777 == 0o600
    stat = procfs.read_stat(ex.pid)
    assert stat is not None and stat.session == ex.pid  # its own session
    fds = {
        int(fd): os.readlink(f"/proc/{ex.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{ex.pid}/fd")
    }
    assert fds[0] == fds[1] == fds[2] == "/dev/null"
    assert not any(t.startswith(("/dev/pts", "/dev/tty")) for t in fds.values())  # no terminal
    assert ex.client is not None
    hello = ex.client.hello
    assert hello["executor_pid"] == ex.pid and hello["boot_id"] == procfs.boot_id()


def test_second_instance_is_refused(executor: Executor) -> None:
    res = subprocess.run(executor.argv(), check=False, capture_output=True, text=True, timeout=30)
    assert res.returncode == 3
    assert f"already serves {executor.dir}" in res.stderr
    assert executor.client is not None and executor.client.call("list")["ok"]


def test_idle_exit(make_executor) -> None:  # type: ignore[no-untyped-def]
    ex: Executor = make_executor(idle_exit=0.3)
    res = ex.spawn("idle", ["sleep", "1000"])
    assert ex.client is not None
    ex.client.close()
    ex.client = None
    assert ex.proc is not None
    with pytest.raises(subprocess.TimeoutExpired):  # a live task keeps it alive
        ex.proc.wait(1.0)
    os.kill(res["pid"], signal.SIGKILL)
    assert ex.proc.wait(15) == 0  # no task, no client: it leaves by itself
    if discover(ex.cgroup_name).kind != "rlimit":
        with open(os.path.join(ex.dir, "executor.log"), encoding="utf-8") as f:
            assert "idle" in f.read()


def test_a_removed_runtime_dir_is_made_again_only_with_tasks(make_executor) -> None:  # type: ignore[no-untyped-def]
    import shutil

    busy: Executor = make_executor()
    busy.spawn("s", ["sleep", "300"])
    idle: Executor = make_executor()
    for ex in (busy, idle):
        shutil.rmtree(ex.dir)
    # with a task: dir, socket and journal again (an engine can reach it, a restart finds it)
    wait_until(lambda: os.path.exists(os.path.join(busy.dir, "executor.sock")), 15, "the socket")
    wait_until(lambda: os.path.exists(os.path.join(busy.dir, "executor-tasks.json")), 15, "journal")
    with SyncExecutorClient.connect(busy.dir) as c:
        assert [t["running"] for t in c.call("list")["tasks"]] == [True]
    # without: it exits, and leaves nothing behind
    assert idle.proc is not None
    idle.proc.wait(timeout=15)
    assert not os.path.exists(idle.dir)
