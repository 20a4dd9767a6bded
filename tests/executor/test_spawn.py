"""Spawning: exit codes and signals, environment and cwd, idempotence, errors, status files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dshell_local.executor.protocol import encode_request
from dshell_local.executor.server import ROUND_SPAWNS
from dshell_local.executor.sync_client import ExecutorCallError

from .conftest import PATH, Executor

RFC3339_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_exit_codes_and_signals(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    ex.spawn("ok", ["/bin/true"])
    ex.spawn("three", ["/bin/sh", "-c", "exit 3"])
    ex.spawn("term", ["/bin/sh", "-c", "kill -TERM $$"])
    got = {n: c.wait_exited(ex.task_id(n)) for n in ("ok", "three", "term")}
    assert (got["ok"]["exit_code"], got["ok"]["signal"]) == (0, None)
    assert (got["three"]["exit_code"], got["three"]["signal"]) == (3, None)
    assert (got["term"]["exit_code"], got["term"]["signal"]) == (None, 15)
    for ev in got.values():
        assert ev["oom"] is False and ev["lost"] is False
        assert RFC3339_US.fullmatch(ev["finished_at"])


def test_env_cwd_stdio_session(any_executor: Executor) -> None:
    ex = any_executor
    assert ex.client is not None
    script = "env | sort; pwd; cat; echo err >&2; ps -o sid= -p $$ | tr -d ' '; echo $$"
    env = {"PATH": PATH, "DSHELL_TASK_ID": ex.task_id("env"), "ODD": "a b=c"}
    ex.spawn("env", ["sh", "-c", script], env=env)  # "sh" resolved in the task's PATH
    assert ex.client.wait_exited(ex.task_id("env"))["exit_code"] == 0
    lines = ex.read("env").splitlines()
    # exactly the given environment, plus what sh itself adds (PWD, SHLVL, _)
    env_lines = {ln for ln in lines if "=" in ln and not ln.startswith(("PWD=", "SHLVL=", "_="))}
    assert env_lines == {f"{k}={v}" for k, v in env.items()}
    assert ex.sandbox("env") in lines  # cwd is the sandbox; stdin was /dev/null (cat ended)
    assert lines[-2] == lines[-1]  # its own session: sid == pid
    assert ex.read("env", "stderr") == "err\n"


def test_shell_and_shared_output(any_executor: Executor) -> None:
    ex = any_executor
    assert ex.client is not None
    sb = ex.sandbox("sh")
    out = os.path.join(sb, "out")
    ex.spawn("sh", ["echo $0 $1; echo e >&2", "zero", "one"], shell=True, stdout=out, stderr=out)
    assert ex.client.wait_exited(ex.task_id("sh"))["exit_code"] == 0
    with open(out, encoding="utf-8") as f:
        assert f.read() == "zero one\ne\n"


def test_output_files_are_appended(any_executor: Executor) -> None:
    ex = any_executor
    assert ex.client is not None
    sb = ex.sandbox("app")
    with open(os.path.join(sb, "stdout"), "w", encoding="utf-8") as f:
        f.write("before\n")
    ex.spawn("app", ["/bin/echo", "after"])
    ex.client.wait_exited(ex.task_id("app"))
    assert ex.read("app") == "before\nafter\n"


def test_spawn_is_idempotent_by_task_id(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    first = ex.spawn("once", ["/bin/sh", "-c", "echo ran >> count; exec sleep 1000"])
    again = ex.spawn("once", ["/bin/echo", "never"])
    assert again["pid"] == first["pid"] and again["existing"] is True and first["existing"] is False
    specs = [ex.spec("once", ["/bin/false"]), ex.spec("two", ["/bin/true"]),
             ex.spec("two", ["/bin/false"])]  # fmt: skip
    batch = c.call("spawn_batch", tasks=specs)["results"]
    assert batch[0]["pid"] == first["pid"] and batch[0]["existing"] is True
    assert batch[1]["ok"] and not batch[1]["existing"]
    assert batch[2]["pid"] == batch[1]["pid"] and batch[2]["existing"] is True
    assert c.wait_exited(ex.task_id("two"))["exit_code"] == 0  # /bin/true ran, /bin/false did not
    c.call("sweep", task_id=ex.task_id("once"))
    c.wait_exited(ex.task_id("once"))
    with open(os.path.join(ex.sandbox("once"), "count"), encoding="utf-8") as f:
        assert f.read() == "ran\n"


@pytest.mark.parametrize(
    ("fields", "code", "errno_name", "fragment"),
    [
        ({"argv": ["no-such-command"]}, "SPAWN_FAILED", "ENOENT", "command not found"),
        ({"argv": ["{sb}/data.txt"]}, "SPAWN_FAILED", "EACCES", "not executable"),
        ({"argv": ["{sb}/garbage"]}, "SPAWN_FAILED", "ENOEXEC", "Exec format error"),
        ({"cwd": "/nonexistent/sandbox"}, "SPAWN_FAILED", "ENOENT", "sandbox /nonexistent"),
        ({"stdout": "/nonexistent/dir/out"}, "SPAWN_FAILED", "ENOENT", "cannot open stdout"),
        ({"stderr": "{sb}"}, "SPAWN_FAILED", "EISDIR", "cannot open stderr"),
        ({"cwd": "relative"}, "BAD_REQUEST", None, "absolute"),
        ({"argv": []}, "BAD_REQUEST", None, "argv"),
        ({"task_id": "../x"}, "BAD_REQUEST", None, "task_id"),
        ({"limits": {"mem_mb": 1}}, "BAD_REQUEST", None, "mem_mb"),
        ({"limits": {"pids": 2.5}}, "BAD_REQUEST", None, "pids"),
    ],
)
def test_spawn_errors_are_clear(
    any_executor: Executor, fields: dict, code: str, errno_name: str | None, fragment: str
) -> None:
    ex = any_executor
    assert ex.client is not None
    sb = ex.sandbox("bad")
    for name, mode in (("data.txt", 0o644), ("garbage", 0o755)):
        with open(os.path.join(sb, name), "wb") as f:
            f.write(b"\x00\x01 not a program")
        os.chmod(os.path.join(sb, name), mode)
    fields = json.loads(json.dumps(fields).replace("{sb}", sb))
    spec = {**ex.spec("bad", ["/bin/true"]), **fields}
    with pytest.raises(ExecutorCallError) as info:
        ex.client.call("spawn", **spec)
    assert info.value.code == code
    assert fragment in info.value.message
    if errno_name:
        assert info.value.errno == getattr(__import__("errno"), errno_name)
    assert ex.client.call("list")["tasks"] == []  # nothing half-registered
    ex.spawn("good", ["/bin/true"])  # and the executor carries on
    assert ex.client.wait_exited(ex.task_id("good"))["exit_code"] == 0


def test_protocol_errors(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    with pytest.raises(ExecutorCallError, match="UNKNOWN_OP"):
        c.call("frobnicate")
    with pytest.raises(ExecutorCallError, match="BAD_REQUEST"):
        c.call("signal", task_id=1)
    with pytest.raises(ExecutorCallError, match="NOT_FOUND"):
        c.call("signal", task_id="nope", signal="TERM")
    c._sock.sendall(b"this is not json\n")  # a garbage line gets an error reply with id 0
    with pytest.raises(ExecutorCallError, match="BAD_REQUEST"):
        c.result(0)
    assert c.call("list")["ok"]


def test_exit_is_journaled_before_the_event(any_executor: Executor) -> None:
    ex = any_executor
    assert ex.client is not None
    sb = ex.sandbox("st")  # made by the fixture, like the engine does
    res = ex.spawn("st", ["/bin/sh", "-c", "exit 7"])
    ev = ex.client.wait_exited(ex.task_id("st"))
    # the event comes after the journal line: read it right away
    logs = [n for n in os.listdir(ex.dir) if n.startswith("executor-tasks.") and n.endswith(".log")]
    lines = [json.loads(line) for n in logs for line in Path(ex.dir, n).read_text().splitlines()]
    exited = [e for e in lines if e.get("task_id") == ex.task_id("st") and "exit_code" in e]
    assert (
        exited and exited[-1]["exit_code"] == 7 and exited[-1]["finished_at"] == ev["finished_at"]
    )
    assert ev["pid"] == res["pid"]
    # the executor writes nothing into the sandbox: only the task's output files are there
    assert sorted(os.listdir(sb)) == ["stderr", "stdout"]


def test_list_then_ack(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    ex.spawn("a", ["/bin/true"])
    ex.spawn("b", ["sleep", "1000"])
    c.wait_exited(ex.task_id("a"))
    tasks = {t["task_id"]: t for t in c.call("list")["tasks"]}
    assert tasks[ex.task_id("a")]["running"] is False and tasks[ex.task_id("a")]["exit_code"] == 0
    assert tasks[ex.task_id("b")]["running"] is True
    res = c.call("ack", task_ids=[ex.task_id("a"), ex.task_id("b"), "unknown"])
    assert res["forgotten"] == [ex.task_id("a")] and res["running"] == [ex.task_id("b")]
    assert [t["task_id"] for t in c.call("list")["tasks"]] == [ex.task_id("b")]


def test_workdir_is_the_cwd_inside_the_sandbox(any_executor: Executor) -> None:
    ex = any_executor
    assert ex.client is not None
    sb = ex.sandbox("wd")
    work = os.path.join(sb, "work")
    os.makedirs(work)
    ex.spawn("wd", ["/bin/sh", "-c", "pwd"], cwd=work, sandbox=sb)
    ex.client.wait_exited(ex.task_id("wd"))
    assert ex.read("wd").strip() == work
    assert sorted(os.listdir(sb)) == ["stderr", "stdout", "work"]
    assert os.listdir(work) == []


def test_a_burst_is_spawned_in_rounds_with_exits_sent_between(any_executor: Executor) -> None:
    """Three batches of 100 read at once are spawned in rounds of at most ROUND_SPAWNS tasks,
    and the exits reaped between rounds go out before the next round: the engine hears of
    the first batch's ends before the third batch is spawned (until 2026-11-26 all three
    were one round, and every exit came after the last reply)."""
    ex = any_executor
    c = ex.client
    assert c is not None and 100 < ROUND_SPAWNS < 200
    batches = [[ex.spec(f"r{b}-{i}", ["/bin/true"]) for i in range(100)] for b in range(3)]
    first = {s["task_id"] for s in batches[0]}
    c._sock.sendall(
        b"".join(
            encode_request(900 + b, "spawn_batch", {"tasks": t}) for b, t in enumerate(batches)
        )
    )
    order: list[str] = []  # "reply <id>" / "exit <task id>", as they arrive
    buf = b""
    while sum(x.startswith("reply") for x in order) < 3:
        c._sock.settimeout(30)
        data = c._sock.recv(1 << 20)
        assert data, "the executor closed the connection"
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if "event" in msg:
                order.append(f"exit {msg['task_id']}")
            else:
                assert msg["id"] in (900, 901, 902) and all(r["ok"] for r in msg["results"])
                order.append(f"reply {msg['id']}")
    assert [x for x in order if x.startswith("reply")] == ["reply 900", "reply 901", "reply 902"]
    third = order.index("reply 902")
    assert any(x.startswith("exit ") and x[5:] in first for x in order[:third]), order[:5]
