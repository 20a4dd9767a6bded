"""Executor launch throughput vs raw ``os.posix_spawn``, measured in the same run.

    PYTHONPATH=plugins:. python bench/executor.py [-n 1000] [-r 3]

For N ``/bin/true`` tasks it prints spawn+reap rates (tasks/s, from the first request to the last
``exited`` event, status files written) and their ratio to raw ``posix_spawn`` + ``waitpid`` in
this process. The machine is shared and noisy, so every executor run is paired with a raw run
just before it, each pair is repeated (``-r``) and the median ratio is printed, together with
CPU per task (executor process, its children), which load distorts much less than wall time.

Rows:

- raw sequential: spawn, wait, spawn, wait… (the "≈1,500/s" baseline of the design notes)
- raw + cgroups (root only): the same loop doing, per task, what the executor does in the kernel
  (mkdir per hierarchy, memory limit, move in, spawn, cpu quota, move out, rmdir): the floor
  that cgroup v1 itself sets, whatever the executor's own code costs
- executor, per isolation (cgroup v1 with mem/cpu/pids limits, and rlimit): ``spawn`` one
  request at a time, ``spawn`` pipelined (all requests sent, then answers read), and
  ``spawn_batch`` of 100 (what the engine uses); then the ``ack`` rate.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from dshell_local.executor.cgdiscover import discover
from dshell_local.executor.sync_client import SyncExecutorClient
from measurements import memcg_condition

ENV = {"PATH": "/usr/bin:/bin"}
TCK = os.sysconf("SC_CLK_TCK")


def raw_sequential(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], ENV), 0)
    return n / (time.perf_counter() - t)


def raw_cgroups(n: int) -> float:
    """The raw loop plus the executor's per-task cgroup work, with nothing else."""
    found = discover(f"dxbraw{os.getpid()}")
    tid = str(os.getpid()).encode()
    homes = [os.open(os.path.join(h.home, "tasks"), os.O_WRONLY) for h in found.hierarchies]

    def put(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, data)
        os.close(fd)

    t = time.perf_counter()
    for i in range(n):
        dirs = [os.path.join(h.parent, f"t{i}") for h in found.hierarchies]
        for d in dirs:
            os.mkdir(d)
        put(dirs[0] + "/memory.limit_in_bytes", b"268435456")
        for d in dirs:
            put(d + "/tasks", tid)
        pid = os.posix_spawn("/bin/true", ["/bin/true"], ENV, setsid=True)
        for fd in homes:
            os.write(fd, tid)
        os.waitpid(pid, 0)
        for d in dirs:
            os.rmdir(d)
    rate = n / (time.perf_counter() - t)
    for fd in homes:
        os.close(fd)
    for h in found.hierarchies:
        os.rmdir(h.parent)
    return rate


def start_executor(rdir: str, cgname: str, isolation: str) -> tuple[subprocess.Popen[bytes], float]:
    r, w = os.pipe()
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dshell_local.executor", "--runtime-dir", rdir,
         "--cgroup-name", cgname, "--idle-exit", "0", "--isolation", isolation,
         "--log", os.path.join(rdir, "executor.log"), "--ready-fd", str(w)],
        pass_fds=(w,),
    )  # fmt: skip
    os.close(w)
    select.select([r], [], [], 30)
    ready = os.read(r, 16)
    os.close(r)
    if not ready.startswith(b"ready"):
        raise SystemExit(f"executor did not start (see {rdir}/executor.log)")
    return proc, time.perf_counter() - t


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own user+sys, reaped children user+sys) of a process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TCK, (int(rest[13]) + int(rest[14])) / TCK


class Run:
    """Spawns N tasks through one connection in one of three styles."""

    def __init__(self, c: SyncExecutorClient, rdir: str, limits: dict[str, Any]) -> None:
        self.c = c
        self.rdir = rdir
        self.limits = limits
        self.seq = 0

    def specs(self, n: int) -> list[dict[str, Any]]:
        self.seq += 1
        out = []
        for i in range(n):
            sb = os.path.join(self.rdir, "sb", f"{self.seq}-{i}")
            os.makedirs(sb)
            tid = f"b{self.seq}-{i}"
            env = {**ENV, "DSHELL_TASK_ID": tid}
            out.append({"task_id": tid, "argv": ["/bin/true"], "env": env, "cwd": sb,
                        "stdout": sb + "/stdout", "stderr": sb + "/stdout",
                        "limits": self.limits})  # fmt: skip
        return out

    def run(self, style: str, n: int) -> tuple[float, float]:
        """(spawn+reap rate, ack rate)."""
        specs = self.specs(n)
        c = self.c
        t = time.perf_counter()
        if style == "sequential":
            for s in specs:
                c.call("spawn", **s)
        elif style == "pipelined":
            for rid in [c.send("spawn", **s) for s in specs]:
                c.result(rid)
        else:
            for k in range(0, n, 100):
                c.call("spawn_batch", tasks=specs[k : k + 100])
        done = len([e for e in c.events() if e["exit_code"] == 0])
        while done < n:
            assert c.next_event(60)["exit_code"] == 0
            done += 1
        rate = n / (time.perf_counter() - t)
        t = time.perf_counter()
        c.call("ack", task_ids=[s["task_id"] for s in specs])
        return rate, n / (time.perf_counter() - t)


def bench_executor(n: int, isolation: str, reps: int) -> None:
    rdir = tempfile.mkdtemp(prefix="dxb", dir="/var/tmp")  # see bench/engine.py BENCH_DIR
    cgname = f"dxbench{os.getpid()}"
    proc, ready_s = start_executor(rdir, cgname, isolation)
    try:
        c = SyncExecutorClient.connect(rdir)
        iso = c.hello["isolation"]
        limits = {"mem_mb": 256, "cpus": 1.0, "pids": 64}
        print(f"\nexecutor, isolation {iso['kind']} ({', '.join(iso['controllers']) or '-'}), "
              f"limits {limits}; ready in {ready_s * 1000:.0f} ms")  # fmt: skip
        run = Run(c, rdir, limits)
        run.run("batch", min(n, 200))  # warm-up
        for style in ("sequential", "pipelined", "batch"):
            rows = []
            for _ in range(reps):
                raw = raw_sequential(n)
                before = cpu_seconds(proc.pid)
                rate, ack = run.run(style, n)
                after = cpu_seconds(proc.pid)
                own, kids = ((a - b) / n * 1e6 for a, b in zip(after, before, strict=True))
                rows.append((rate / raw, rate, raw, ack, own, kids))
            ratio, rate, raw, ack, own, kids = sorted(rows)[len(rows) // 2]
            every = " ".join(f"{r[0]:.2f}" for r in rows)
            print(f"  {style:<11} {rate:6.0f}/s vs raw {raw:6.0f}/s: ratio {ratio:4.2f} "
                  f"(all: {every}); cpu/task executor {own:4.0f} us, task {kids:4.0f} us; "
                  f"ack {ack:6.0f}/s")  # fmt: skip
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
            rss = next(ln.split()[1] for ln in f if ln.startswith("VmRSS"))
        tasks = 3 * reps * n + min(n, 200)
        print(f"  executor RSS after {tasks} tasks: {int(rss) / 1024:.1f} MiB")
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(rdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("-n", type=int, default=1000, help="tasks per run")
    p.add_argument("-r", type=int, default=3, help="repetitions (median printed)")
    args = p.parse_args()
    n = args.n
    raw_sequential(100)  # warm-up
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; {memcg_condition()}")
    t0 = os.times()
    raw = raw_sequential(n)
    t1 = os.times()
    own = (t1.user + t1.system - t0.user - t0.system) / n * 1e6
    kids = (t1.children_user + t1.children_system - t0.children_user - t0.children_system) / n * 1e6
    print(f"raw posix_spawn+waitpid, sequential: {raw:6.0f}/s; cpu/task parent {own:.0f} us, "
          f"task {kids:.0f} us")  # fmt: skip
    root = os.geteuid() == 0 and discover(f"dxbprobe{os.getpid()}").kind == "cgroup-v1"
    if root:
        for h in discover(f"dxbprobe{os.getpid()}").hierarchies:
            os.rmdir(h.parent)
        ratios = []
        for _ in range(args.r):
            raw = raw_sequential(n)
            ratios.append(raw_cgroups(n) / raw)
        print(f"raw + cgroups (the kernel's floor):  ratio {statistics.median(ratios):4.2f} "
              f"(all: {' '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    for isolation in ["auto", "rlimit"] if root else ["rlimit"]:
        bench_executor(n, isolation, args.r)


if __name__ == "__main__":
    main()
