"""Batch jobs benchmark. Prints figures (and ratios to baselines measured in the same run);
asserts nothing (machines here are shared and noisy: the load average is printed).

    python bench/batch.py [pipeline lateness ...] [--jobs 1000] [--width 50] [--cron 20]

Engine state goes under ``DSHELL_BENCH_DIR`` (default /var/tmp), like the other benchmarks.

``pipeline``
    Runs per second the jobs controller sustains for a pipeline of ``jobs`` trivial jobs
    (``true``): ``width`` chains side by side, each job after the one before it in its chain
    and after its neighbour's (two parents: Chronos semantics, it runs once both succeeded).
    The clock runs from the ``job run`` of the roots to the last success. Baselines, same
    engine: the same number of plain tasks submitted at once (the engine's raw launch rate),
    and the same dependency shape driven by a client that submits each task when its parents
    have ended (what a script around ``run`` would get).

``lateness``
    How late cron runs start against their due times: ``cron`` jobs on an ISO 8601 schedule
    firing every second (``R10/<start>/PT1S``), first on an idle engine, then while the
    pipeline above runs. Lateness is the run's start (its task RUNNING) minus its due time;
    p50 and p99 over every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import measurements

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))

BENCH_DIR = os.environ.get("DSHELL_BENCH_DIR", "/var/tmp")


class PrivateEngine:
    """An engine of the benchmark's own (temporary config/state/runtime dirs)."""

    def __enter__(self) -> PrivateEngine:
        self.root = tempfile.mkdtemp(prefix="dsb", dir=BENCH_DIR)
        self.runtime = tempfile.mkdtemp(prefix="dsb", dir="/tmp")  # a short socket path
        for name in ("CONFIG", "STATE"):
            os.makedirs(f"{self.root}/{name.lower()}")
            os.environ[f"DSHELL_{name}_DIR"] = f"{self.root}/{name.lower()}"
        os.environ["DSHELL_RUNTIME_DIR"] = self.runtime
        with open(f"{self.root}/config/engine.toml", "w") as f:  # room for many tiny tasks
            f.write('[[agents]]\nid = "local"\ncpus = 400\nmem = 65536\nports = [[31000, 32000]]\n')
        from dshell_local import control

        self.control = control
        control.start()
        self.client = control.client(timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.control.stop(kill_tasks=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runtime, ignore_errors=True)

    def create(self, jobs: list[Any]) -> None:
        from dshell.model import Job

        from dshell_local.jobapi import JobCreate

        self.client.call("POST", "/jobs/create", list[Job], JobCreate(jobs=jobs))

    def call(self, verb: str, name: str, kind: Any, **params: Any) -> Any:
        return self.client.call("POST", f"/jobs/{verb}", kind, {"name": name, **params})

    def jobs(self) -> list[Any]:
        from dshell.model import Job

        return self.client.call("GET", "/jobs", list[Job])


def tiny(name: str, after: list[str] | None = None, schedule: Any = None) -> Any:
    from dshell.specs.model import BatchJobSpec, ResourceSpec

    return BatchJobSpec(
        name=name,
        command=["true"],
        resources=ResourceSpec(cpus=0.01, mem=8),
        after=after or [],
        schedules=[schedule] if schedule is not None else [],
    )


def shape(jobs: int, width: int) -> dict[str, list[str]]:
    """``{job: parents}``: ``width`` chains, each job after its predecessor and its
    neighbour's predecessor."""
    depth = max(1, jobs // width)
    graph: dict[str, list[str]] = {}
    for i in range(depth):
        for j in range(width):
            if len(graph) >= jobs:
                break
            ups = [] if i == 0 else [f"p{i - 1}-{j}", f"p{i - 1}-{(j + 1) % width}"]
            graph[f"p{i}-{j}"] = sorted({u for u in ups if u in graph})
    return graph


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish in time")
        time.sleep(step)


def run_pipeline(eng: PrivateEngine, graph: dict[str, list[str]]) -> float:
    """Create the pipeline, run its roots; seconds until every job succeeded once."""
    from dshell.model import JobRun

    eng.create([tiny(name, ups) for name, ups in graph.items()])
    roots = [n for n, ups in graph.items() if not ups]
    names = set(graph)
    t0 = time.perf_counter()
    for root in roots:
        eng.call("run", root, JobRun)

    def done() -> bool:
        jobs = [j for j in eng.jobs() if j.name in names]
        failed = [j.name for j in jobs if j.error_count]
        if failed:
            raise RuntimeError(f"runs failed: {failed[:5]}")
        return sum(1 for j in jobs if j.success_count >= 1) == len(names)

    wait_for(done, 900, 0.25)  # each look lists every job: not too often
    return time.perf_counter() - t0


def raw_bulk(eng: PrivateEngine, n: int) -> float:
    """Seconds to launch ``n`` trivial tasks in one submission until all have ended."""
    from dshell.model import Resources, RunSpec

    spec = RunSpec(command=["true"], resources=Resources(cpus=0.01, mem=8), instances=n)
    t0 = time.perf_counter()
    tasks = eng.client.submit(spec)
    for task in tasks:
        eng.client.wait(task.id, timeout=600)
    return time.perf_counter() - t0


def raw_dag(eng: PrivateEngine, graph: dict[str, list[str]]) -> float:
    """The same shape driven by a client: each task submitted when its parents ended."""
    from dshell.model import Resources, RunSpec

    spec = RunSpec(command=["true"], resources=Resources(cpus=0.01, mem=8))
    children: dict[str, list[str]] = {n: [] for n in graph}
    for name, ups in graph.items():
        for up in ups:
            children[up].append(name)
    left = {n: len(ups) for n, ups in graph.items()}
    t0 = time.perf_counter()
    running = {eng.client.submit(spec)[0].id: n for n, c in left.items() if c == 0}
    while running:
        active = {t.id for t in eng.client.list_tasks()}
        for task_id in [t for t in running if t not in active]:
            name = running.pop(task_id)
            for child in children[name]:
                left[child] -= 1
                if left[child] == 0:
                    running[eng.client.submit(spec)[0].id] = child
        time.sleep(0.005)
    return time.perf_counter() - t0


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure_pipeline(args: argparse.Namespace) -> None:
    graph = shape(args.jobs, args.width)
    with PrivateEngine() as eng:
        secs = run_pipeline(eng, graph)
        bulk = raw_bulk(eng, len(graph))
        dag = raw_dag(eng, graph)
        print(f"pipeline of {len(graph)} jobs ({args.width} chains, two parents each):")
        print(f"  load average: {load_average()}")
        print(f"  jobs controller: {len(graph) / secs:7.1f} runs/s ({secs:.2f} s)")
        print(f"  raw engine, one submission: {len(graph) / bulk:7.1f} tasks/s ({bulk:.2f} s)")
        print(f"  client-driven DAG of tasks: {len(graph) / dag:7.1f} tasks/s ({dag:.2f} s)")
        print(f"  ratio to raw launches: {bulk / secs:.2f}; to the client-driven DAG: "
              f"{dag / secs:.2f}")  # fmt: skip


def _lateness(eng: PrivateEngine, prefix: str, n: int, reps: int) -> list[float]:
    """Lateness (s) of every run of ``n`` every-second jobs (already created)."""
    from dshell.model import JobRun

    out = []
    for i in range(n):
        for run in eng.call("history", f"{prefix}{i}", list[JobRun]):
            if run.state != "SUCCESS" or run.due_at is None or run.started_at is None:
                continue
            due = datetime.fromisoformat(run.due_at.replace("Z", "+00:00"))
            began = datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
            out.append((began - due).total_seconds())
    return out


def _crons(eng: PrivateEngine, prefix: str, n: int, reps: int, lead: float) -> float:
    from dshell.specs.model import ScheduleSpec

    start = datetime.fromtimestamp(int(time.time() + lead), UTC)
    expr = f"R{reps}/{start.isoformat().replace('+00:00', 'Z')}/PT1S"
    eng.create([tiny(f"{prefix}{i}", schedule=ScheduleSpec(iso8601=expr)) for i in range(n)])
    return start.timestamp() + reps


def _quantiles(values: list[float]) -> str:
    if not values:
        return "no runs"
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):6.1f} ms  p99 {p99:6.1f} ms  ({len(ms)} runs)"


def measure_lateness(args: argparse.Namespace) -> None:
    n, reps = args.cron, 10
    with PrivateEngine() as eng:
        end = _crons(eng, "idle", n, reps, 2.0)
        time.sleep(max(0.0, end - time.time()) + 1.0)
        idle = _lateness(eng, "idle", n, reps)
        graph = shape(args.jobs, args.width)
        end = _crons(eng, "busy", n, reps, 2.0)
        secs = run_pipeline(eng, graph)  # the cron jobs fire during the pipeline
        time.sleep(max(0.0, end - time.time()) + 1.0)
        busy = _lateness(eng, "busy", n, reps)
        print(f"lateness of {n} cron jobs firing every second, {reps} runs each:")
        print(f"  load average: {load_average()}")
        print(f"  idle engine:        {_quantiles(idle)}")
        print(
            f"  during the pipeline: {_quantiles(busy)} (pipeline: {len(graph) / secs:.1f} runs/s)"
        )


MEASUREMENTS: dict[str, measurements.Measurement] = {
    "pipeline": measure_pipeline,
    "lateness": measure_lateness,
}


def main() -> None:
    measurements.run(
        __doc__, MEASUREMENTS, [("--jobs", int, 1000), ("--width", int, 50), ("--cron", int, 20)]
    )


if __name__ == "__main__":
    main()
