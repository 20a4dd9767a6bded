"""Usage samples for ``top``: cpu % from the executor's cpu time deltas, rss, processes."""

from __future__ import annotations

import asyncio
import time

from dshell.model import Resources, TaskStats

from .engine import Engine
from .execport import ExecutorError, Usage

FRESH = 10.0  # seconds a previous sample stays good for a delta


class StatsSampler:
    """Keeps the previous sample so each new one yields cpu % over the interval."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._prev: dict[str, tuple[int, float]] = {}
        self._prev_at = 0.0
        self._latest: dict[str, tuple[float, float]] = {}  # task -> (cores, rss MiB)

    async def _usage(self) -> list[Usage]:
        try:
            return await self.engine.executor.stats()
        except ExecutorError:
            return []

    async def sample(self) -> list[TaskStats]:
        """One sample per running task (a short first interval when none is recent)."""
        if time.monotonic() - self._prev_at > FRESH:
            self._remember(await self._usage(), time.monotonic())
            await asyncio.sleep(0.25)
        usage = await self._usage()
        now = time.monotonic()
        out = []
        for u in usage:
            rec = self.engine.records.get(u.task_id)
            if rec is None:
                continue
            prev = self._prev.get(u.task_id)
            cores = 0.0
            if prev is not None and now > prev[1]:
                cores = max(0.0, (u.cpu_ns - prev[0]) / 1e9 / (now - prev[1]))
            task = rec.task
            out.append(
                TaskStats(
                    task_id=u.task_id,
                    name=task.name,
                    agent_id=task.agent_id,
                    cpu_percent=round(cores * 100.0, 1),
                    rss=round(u.rss_bytes / (1024 * 1024), 3),
                    allocated=Resources(
                        task.resources.cpus, task.resources.mem, task.resources.disk
                    ),
                    processes=u.nprocs,
                    parent_task=task.parent_task,
                )
            )
        self._latest = {s.task_id: (s.cpu_percent / 100.0, s.rss) for s in out}
        self._remember(usage, now)
        return out

    def _remember(self, usage: list[Usage], now: float) -> None:
        self._prev = {u.task_id: (u.cpu_ns, now) for u in usage}
        self._prev_at = now

    def latest(self) -> dict[str, tuple[float, float]]:
        """The last sample as task -> (cores used, rss MiB), for agents' ``used``."""
        return self._latest


def used_by_agent(engine: Engine, usage: dict[str, tuple[float, float]]) -> dict[str, Resources]:
    """Per agent: cores and MiB in use, from per-task (cores, rss MiB)."""
    used: dict[str, Resources] = {}
    for task_id, (cores, rss) in usage.items():
        rec = engine.records.get(task_id)
        if rec is None or rec.task.agent_id is None:
            continue
        cur = used.setdefault(rec.task.agent_id, Resources())
        cur.cpus += cores
        cur.mem += rss
    return used
