"""Embedded-engine benchmark (issue 3). Prints figures as ratios to baselines measured in the
same run; asserts nothing (machines here are shared and noisy).

1. Launch throughput: 1,000 `/bin/true` tasks through the engine (submitted as one batch and
   as 1,000 single requests from 8 client threads) vs raw `os.posix_spawn` of 1,000
   `/bin/true` — with isolation (cgroups) on and off; each as the first burst on a new engine
   and again once it was idle (when it has spare sandboxes for a burst that size). Goal: >= 0.5
   of raw. Each case runs ``--rounds`` times, each round paired with its own raw measurement
   just before it, and the median ratio is printed with all of them (one round moves by
   +-20 % here from one minute to the next).
2. Memory: PSS of the engine plus its executor with 1,000 running `sleep` tasks. Goal <= 150 MB.
3. `dshell ps -o tsv` wall time with 1,000 and 10,000 tasks in history vs `python -c pass`.
   Goals: <= 150 ms and <= 400 ms.

    python bench/engine.py [--tasks 1000] [--rounds 3] [--history 10000] [--skip-history]

The engines' state dirs are removed at the end, not after each engine: on an ext4 file system
without a journal (these machines) the inode allocator skips inodes freed in the last 60-360 s
(``recently_deleted``), reading their inode table blocks, so a first burst's sandboxes made
right after the previous engine's 6,000 files were deleted cost several times more CPU
(``perf``: ``find_get_block_common``, ``recently_deleted`` at the top).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from measurements import memcg_condition

# Where the private engines live. Not /tmp: on these machines a mkdir or a file creation
# anywhere under /tmp costs ~1 ms (30x /var/tmp or $HOME on the same ext4 file system, some
# watcher on /tmp), and every task's sandbox is a mkdir plus three files; users' state dirs
# are under $HOME. /var/tmp keeps the runtime dir short enough for the Unix socket.
BENCH_DIR = os.environ.get("DSHELL_BENCH_DIR", "/var/tmp")
_USED: list[Path] = []  # the engines' dirs, removed at the end (see the docstring)


def raw_spawn_rate(n: int) -> float:
    """Sequential posix_spawn + waitpid of /bin/true: spawns per second."""
    t0 = time.perf_counter()
    for _ in range(n):
        pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
        os.waitpid(pid, 0)
    return n / (time.perf_counter() - t0)


class Engine:
    """A private engine in temp dirs, stopped (with its tasks) on exit."""

    def __init__(self, isolation: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="dbe", dir=BENCH_DIR))
        self.env = {
            "DSHELL_CONFIG_DIR": str(self.tmp / "c"),
            "DSHELL_STATE_DIR": str(self.tmp / "s"),
            "DSHELL_RUNTIME_DIR": str(self.tmp / "r"),
        }
        if not isolation:
            self.env["DSHELL_ISOLATION"] = "none"
        (self.tmp / "c").mkdir()
        # One big agent so 1,000 concurrent tasks all fit (allocation is what we measure).
        (self.tmp / "c" / "engine.toml").write_text(
            '[[agents]]\nhostname = "bench"\ncpus = 4000\nmem = 4000000\ndisk = 100000\n'
            "ports = [[31000, 32000]]\n"
        )

    def __enter__(self) -> Engine:
        os.environ.update(self.env)
        from dshell_local import control

        control.start(wait=True)
        self.client = control.client(timeout=600)
        return self

    def __exit__(self, *exc: object) -> None:
        from dshell_local import control

        control.stop(kill_tasks=True)
        for key in self.env:
            os.environ.pop(key, None)
        _USED.append(self.tmp)

    def last_seq(self) -> int:
        return max((e.seq for e in self.client.events(since=0)), default=0)

    def wait_all_done(self, ids: set[str], since: int, timeout: float = 600) -> None:
        """Follow the event stream until every task in ``ids`` has ended. (Polling the task
        list instead cost the engine more CPU than the launches it measured: every poll
        serialises all the active tasks.)"""
        left = set(ids)
        deadline = time.monotonic() + timeout
        with control_client() as c:
            for ev in c.events(since=since, follow=True):
                if ev.task is not None and ev.task.state.terminal:
                    left.discard(ev.task.id)
                if not left:
                    return
                if time.monotonic() > deadline:
                    break
        raise SystemExit("tasks did not finish in time")


def control_client() -> Any:
    from dshell_local import control

    return control.client(timeout=600)


def engine_rate(n: int, isolation: bool, mode: str) -> tuple[float, float]:
    """Launch rates of a burst of ``n`` on a new engine, and of a second burst once the engine
    has been idle (it then has as many spare sandboxes as the first burst used: see
    dshell_local/sandbox.py; without spares both would measure the same)."""
    from dshell.model import Resources, RunSpec

    spec = RunSpec(command=["/bin/true"], resources=Resources(cpus=0.001, mem=1))
    rates = []
    with Engine(isolation) as eng:
        for burst in range(2):
            if burst:  # idle until the spares are made (at most 30 s on a slow disk)
                spares = eng.tmp / "s" / "sandbox-spares"
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    time.sleep(0.5)
                    if spares.is_dir() and len(os.listdir(spares)) >= n:
                        break
            since = eng.last_seq()
            t0 = time.perf_counter()
            if mode == "batch":
                import msgspec

                tasks = eng.client.submit(msgspec.structs.replace(spec, instances=n))
            else:
                from dshell_local import control

                def one(_: int) -> list:  # type: ignore[type-arg]
                    with control.client(timeout=600) as c:
                        return c.submit(spec)

                with ThreadPoolExecutor(8) as pool:
                    tasks = [t for ts in pool.map(one, range(n)) for t in ts]
            eng.wait_all_done({t.id for t in tasks}, since)
            rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1]


def pss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().pss
        except psutil.Error:
            pass
    return total / 2**20


def memory(n: int) -> float:
    from dshell.model import Resources, RunSpec

    with Engine(isolation=True) as eng:
        spec = RunSpec(
            command=["sleep", "600"], resources=Resources(cpus=0.001, mem=1), instances=n
        )
        eng.client.submit(spec)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            running = eng.client.list_tasks(states=["RUNNING"])
            if len(running) >= n:
                break
            time.sleep(0.2)
        st = eng.client.status()
        pids = [st.pid] + ([st.executor.pid] if getattr(st, "executor", None) else [])
        time.sleep(1)
        return pss_mb(pids)


def median_ms(argv: list[str], env: dict[str, str], n: int = 11) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=False)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def ps_times(history: list[int]) -> list[tuple[int, float, float]]:
    from dshell.model import Resources, RunSpec

    rows = []
    with Engine(isolation=False) as eng:
        done = 0
        env = {**os.environ}
        for target in history:
            spec = RunSpec(
                command=["/bin/true"],
                resources=Resources(cpus=0.001, mem=1),
                instances=target - done,
            )
            since = eng.last_seq()
            tasks = eng.client.submit(spec)
            eng.wait_all_done({t.id for t in tasks}, since)
            done = target
            base = median_ms([sys.executable, "-c", "pass"], env)
            ps_all = median_ms([sys.executable, "-m", "dshell", "ps", "-a", "-o", "tsv"], env, 7)
            ps = median_ms([sys.executable, "-m", "dshell", "ps", "-o", "tsv"], env)
            rows.append((target, base, ps))
            print(
                f"  history {target:>6}: python -c pass {base:6.1f} ms | dshell ps -o tsv "
                f"{ps:6.1f} ms ({ps / base:4.1f}x) | ps -a (all {target} rows) {ps_all:6.1f} ms"
            )
    return rows


def main() -> None:
    # Measure what an installed CLI does: bytecode cached (pip compiles it on install).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall

    root = Path(__file__).resolve().parent.parent
    for pkg in ("dshell", "plugins"):
        compileall.compile_dir(str(root / pkg), quiet=1)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--history", type=int, default=10000)
    ap.add_argument("--skip-history", action="store_true")
    args = ap.parse_args()
    n = args.tasks
    try:
        launches(n, args.rounds)
        print(f"== memory with {n} running sleep tasks")
        print(f"  engine + executor PSS: {memory(n):6.1f} MB (goal <= 150 MB)")
        if not args.skip_history:
            print("== dshell ps -o tsv with tasks in history")
            ps_times(sorted({1000, args.history}))
    finally:
        for path in _USED:
            shutil.rmtree(path, ignore_errors=True)


def launches(n: int, rounds: int) -> None:
    print(f"== launch throughput, {n} x /bin/true ({memcg_condition()})")
    print("  (first: a burst on a new engine; again: a second burst once it was idle, with the")
    print(f"  spare sandboxes the first one left it; medians of {rounds} rounds, each paired")
    print("  with its own raw posix_spawn+wait just before it)")
    raws = []
    for iso in (True, False):
        for mode in ("batch", "single"):
            firsts, agains = [], []
            for _ in range(rounds):
                raw = raw_spawn_rate(n)
                raws.append(raw)
                first, again = engine_rate(n, iso, mode)
                firsts.append(first / raw)
                agains.append(again / raw)
            print(
                f"  engine isolation={'on ' if iso else 'off'} {mode:6}: first "
                f"{statistics.median(firsts):4.2f} ({' '.join(f'{r:.2f}' for r in firsts)}), "
                f"again {statistics.median(agains):4.2f} "
                f"({' '.join(f'{r:.2f}' for r in agains)}) of raw (goal >= 0.5)"
            )
    print(
        f"  raw posix_spawn+wait: median {statistics.median(raws):.0f}/s "
        f"(from {min(raws):.0f} to {max(raws):.0f})"
    )


if __name__ == "__main__":
    main()
