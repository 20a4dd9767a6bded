"""``run_check``: COMMAND health checks run by the executor inside a running task's cgroups."""

from __future__ import annotations

import os

import pytest

from dshell_local.executor import procfs
from dshell_local.executor.sync_client import ExecutorCallError

from .conftest import PATH, Executor, wait_until


def _gone(pid: int) -> bool:
    """Not running and not a zombie either (reaped)."""
    return procfs.read_stat(pid) is None


def _check(ex: Executor, name: str, command: str, timeout: float = 20.0, **env: str) -> dict:
    assert ex.client is not None
    tid = ex.task_id(name)
    req = ex.client.send(  # send, not call: call() has a timeout argument of its own
        "run_check", task_id=tid, command=command, cwd=ex.sandbox(name), timeout=timeout,
        env={"PATH": PATH, "DSHELL_TASK_ID": tid, **env},
    )  # fmt: skip
    return ex.client.result(req)


def _read(ex: Executor, name: str, file: str) -> str:
    with open(os.path.join(ex.sandbox(name), file), encoding="utf-8") as f:
        return f.read()


def test_exit_code_cwd_env_session_and_cgroup(any_executor: Executor) -> None:
    ex = any_executor
    task = ex.spawn("svc", ["sleep", "1000"])
    script = (
        "pwd > where; echo $DSHELL_TASK_ID $EXTRA > env; cat /proc/self/cgroup > cg; "
        "ps -o sid= -p $$ | tr -d ' ' > sid; echo $$ > pid; exit 3"
    )
    res = _check(ex, "svc", script, EXTRA="x y")
    assert (res["exit_code"], res["signal"], res["timed_out"]) == (3, None, False)
    assert _read(ex, "svc", "where").strip() == ex.sandbox("svc")
    assert _read(ex, "svc", "env").strip() == f"{ex.task_id('svc')} x y"
    assert _read(ex, "svc", "sid") == _read(ex, "svc", "pid")  # its own session
    assert int(_read(ex, "svc", "sid")) != task["pid"]
    cg = _read(ex, "svc", "cg")
    if ex.client and ex.client.hello["isolation"]["kind"] != "rlimit":
        memory = next(line for line in cg.splitlines() if ":memory:" in line)
        assert memory.endswith(f"/task-{ex.task_id('svc')}")  # inside the task's cgroup
    assert _check(ex, "svc", "true")["exit_code"] == 0


def test_timeout_kills_the_whole_group_and_reaps(any_executor: Executor) -> None:
    ex = any_executor
    task = ex.spawn("hang", ["sleep", "1000"])
    res = _check(ex, "hang", "sleep 1000 & echo $! > bg; echo $$ > sh; wait", timeout=0.3)
    assert res == {"id": res["id"], "ok": True, "exit_code": None, "signal": 9, "timed_out": True}
    for file in ("sh", "bg"):
        pid = int(_read(ex, "hang", file))
        wait_until(lambda pid=pid: _gone(pid), 10, f"check process {file} to be reaped")
    if ex.client and ex.client.hello["isolation"]["kind"] != "rlimit":
        paths = ex.client.call("cgroup_paths", task_id=ex.task_id("hang"))["paths"]
        with open(os.path.join(paths[0], "cgroup.procs"), encoding="ascii") as f:
            assert f.read().split() == [str(task["pid"])]  # only the task is left
    assert not _gone(task["pid"])  # the task itself is untouched


def test_leftovers_of_a_finished_check_are_killed(any_executor: Executor) -> None:
    ex = any_executor
    ex.spawn("bg", ["sleep", "1000"])
    res = _check(ex, "bg", "sleep 1000 & echo $! > bg; exit 0")
    assert (res["exit_code"], res["timed_out"]) == (0, False)
    pid = int(_read(ex, "bg", "bg"))
    wait_until(lambda: _gone(pid), 10, "the check's background process to die")


def test_checks_run_concurrently_and_answer_in_their_own_time(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    ex.spawn("two", ["sleep", "1000"])
    tid, sb = ex.task_id("two"), ex.sandbox("two")
    env = {"PATH": PATH, "DSHELL_TASK_ID": tid}
    slow = c.send("run_check", task_id=tid, command="sleep 0.5; exit 1", env=env, cwd=sb,
                  timeout=20)  # fmt: skip
    fast = c.send("run_check", task_id=tid, command="exit 0", env=env, cwd=sb, timeout=20)
    assert c.result(fast)["exit_code"] == 0
    assert slow not in c._replies  # the slow one has not answered yet
    assert c.result(slow)["exit_code"] == 1


def test_errors(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    ex.spawn("done", ["true"])
    c.wait_exited(ex.task_id("done"))
    ex.spawn("up", ["sleep", "1000"])
    cases = [
        ("no-such-task", {}, "NOT_FOUND"),
        (ex.task_id("done"), {}, "NOT_FOUND"),  # exited: nothing to check
        (ex.task_id("up"), {"timeout": 0}, "BAD_REQUEST"),
        (ex.task_id("up"), {"command": " "}, "BAD_REQUEST"),
        (ex.task_id("up"), {"cwd": "relative"}, "BAD_REQUEST"),
        (ex.task_id("up"), {"cwd": "/nonexistent/sandbox"}, "SPAWN_FAILED"),
    ]
    for tid, override, code in cases:
        fields = {"task_id": tid, "command": "true", "env": {"PATH": PATH}, "cwd": "/tmp",
                  "timeout": 5.0, **override}  # fmt: skip
        with pytest.raises(ExecutorCallError) as info:
            c.result(c.send("run_check", **fields))
        assert info.value.code == code, (override, info.value)
