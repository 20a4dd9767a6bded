"""Many launches leave nothing behind; stats; tty tasks."""

from __future__ import annotations

import os
import sys

from dshell_local.executor import procfs
from dshell_local.executor.cgroups import OWNER, SPARE

from .conftest import Executor, wait_until


def _zombie_children(pid: int) -> list[int]:
    out = []
    for p in procfs.all_pids():
        st = procfs.read_stat(p)
        if st is not None and st.ppid == pid and st.state == "Z":
            out.append(p)
    return out


def _task_cgroups(ex: Executor, spares: bool = False) -> list[str]:
    """The task groups under the executor's parents (``spares``: the reuse pool's instead; the
    executor's ``owner-`` mark is neither)."""
    paths = []
    for root in ("memory", "cpu", "cpuacct", "pids"):
        for dirpath, dirnames, _ in os.walk(f"/sys/fs/cgroup/{root}"):
            if os.path.basename(dirpath) == ex.cgroup_name:
                paths += [
                    os.path.join(dirpath, d)
                    for d in dirnames
                    if d.startswith(SPARE) == spares and not d.startswith(OWNER)
                ]
                dirnames.clear()
            elif dirpath.count("/") > 6:
                dirnames.clear()
    return paths


def test_thousand_launches_return_to_baseline(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    fd_dir = f"/proc/{ex.pid}/fd"

    def fds() -> list[str]:  # what each fd points to (the journal log changes generation)
        links = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
        return sorted("journal-log" if "executor-tasks." in x else x for x in links)

    ex.spawn("warm", ["/bin/true"])
    c.wait_exited(ex.task_id("warm"))
    c.call("ack", task_ids=[ex.task_id("warm")])
    wait_until(lambda: _task_cgroups(ex) == [], what="the warm-up task's cgroups removed")
    base_fds = fds()

    ids = []
    for b in range(10):
        specs = [ex.spec(f"n{b}-{i}", ["/bin/true"], limits={"mem_mb": 64, "pids": 16})
                 for i in range(100)]  # fmt: skip
        res = c.call("spawn_batch", tasks=specs)["results"]
        assert all(r["ok"] for r in res)
        ids += [s["task_id"] for s in specs]
    exited = set()
    while len(exited) < len(ids):
        ev = c.next_event()
        assert ev["exit_code"] == 0, ev
        exited.add(ev["task_id"])
    assert exited == set(ids)
    assert c.call("ack", task_ids=ids)["forgotten"] == ids

    assert c.call("list")["tasks"] == []
    assert _zombie_children(ex.pid) == []
    wait_until(lambda: _task_cgroups(ex) == [], what="cgroups removed (in the background)")
    assert _task_cgroups(ex, spares=True) == []  # none kept for reuse
    assert fds() == base_fds
    journal_logs = [n for n in os.listdir(ex.dir) if n.endswith(".log") and "tasks" in n]
    assert len(journal_logs) == 1  # compacted: older generations removed


def test_stats(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    busy = (
        "import time\nx = bytearray(20 << 20)\nt = time.process_time()\n"
        "while time.process_time() - t < 0.05: pass\nprint('ok', flush=True)\ntime.sleep(1000)"
    )
    ex.spawn("busy", [sys.executable, "-c", busy])
    ex.spawn("idle", ["sleep", "1000"])
    wait_until(lambda: "ok" in ex.read("busy"), what="the busy task to burn cpu")
    stats = {s["task_id"]: s for s in c.call("stats")["tasks"]}
    b, i = stats[ex.task_id("busy")], stats[ex.task_id("idle")]
    assert b["cpu_ns"] >= 40_000_000 and b["rss_bytes"] >= 20 << 20 and b["nprocs"] == 1
    assert i["nprocs"] == 1 and i["cpu_ns"] < b["cpu_ns"]


def test_tty_task(any_executor: Executor) -> None:
    ex = any_executor
    c = ex.client
    assert c is not None
    script = "tty; read a; stty size; read x; echo got $x"
    ex.spawn("tty", ["/bin/sh", "-c", script], tty=True)
    tid = ex.task_id("tty")
    wait_until(lambda: "/dev/pts/" in ex.read("tty"), what="the tty line")
    c.call("resize", task_id=tid, rows=40, cols=100)
    assert c.call("write_stdin", task_id=tid, data="go\n")["written"] == 3
    wait_until(lambda: "40 100" in ex.read("tty"), what="the new size")
    c.call("write_stdin", task_id=tid, data="hello\n")
    assert c.wait_exited(tid)["exit_code"] == 0
    assert "got hello" in ex.read("tty")
    ex.spawn("notty", ["/bin/true"])
    try:
        c.call("write_stdin", task_id=ex.task_id("notty"), data="x")
    except Exception as exc:
        assert "NOT_TTY" in str(exc)
    else:
        raise AssertionError("write_stdin to a task without tty must fail")
