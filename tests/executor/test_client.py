"""The engine's asyncio client: start on demand (and the start race), events, reconnection."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from dshell_local.executor import procfs
from dshell_local.executor.client import ExecutorClient, ExecutorError, ExecutorUnavailable
from dshell_local.executor.protocol import ExitedEvent, Limits, SpawnSpec

from .conftest import PATH, Executor, need_cgroups, wait_until


def _spec(ex: Executor, name: str, argv: list[str]) -> SpawnSpec:
    tid, sb = ex.task_id(name), ex.sandbox(name)
    return SpawnSpec(
        task_id=tid, argv=argv, env={"PATH": PATH, "DSHELL_TASK_ID": tid}, cwd=sb,
        stdout=sb + "/stdout", stderr=sb + "/stderr", limits=Limits(mem_mb=64),
    )  # fmt: skip


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: (st := procfs.read_stat(pid)) is None or st.state == "Z", 15, "stop")


def test_start_race_events_and_reconnect(make_executor) -> None:  # type: ignore[no-untyped-def]
    need_cgroups()
    ex: Executor = make_executor(start=False)
    pids: set[int] = set()

    async def scenario() -> None:
        connects = 0

        async def on_connect(client: ExecutorClient) -> None:
            nonlocal connects
            connects += 1

        clients = await asyncio.gather(*(
            ExecutorClient.connect(ex.dir, ex.cgroup_name, ex.dir + "/executor.log", idle_exit=0,
                                   on_connect=on_connect)
            for _ in range(3)
        ))  # fmt: skip
        c = clients[0]
        assert c.info is not None
        pids.update(x.info.executor_pid for x in clients if x.info)
        assert len(pids) == 1  # three engines raced to start it: one executor
        assert c.info.isolation.kind == "cgroup-v1"
        seen: list[ExitedEvent] = []
        c.on_exit(seen.append)
        events = c.events()
        items = await c.spawn_batch(
            [_spec(ex, "a", ["/bin/true"]), _spec(ex, "b", ["sleep", "1000"])]
        )
        assert [i.ok for i in items] == [True, True]
        ev = await asyncio.wait_for(events.__anext__(), 10)
        assert ev.task_id == ex.task_id("a") and ev.exit_code == 0 and seen == [ev]
        with pytest.raises(ExecutorError) as info:
            await c.signal("no-such-task", 15)
        assert info.value.error == "NOT_FOUND"

        os.kill(c.info.executor_pid, signal.SIGKILL)  # the executor crashes
        tasks = {t.task_id: t for t in await c.list_tasks()}  # reconnects, starting a new one
        assert c.info.executor_pid not in pids and connects == 4
        pids.add(c.info.executor_pid)
        assert tasks[ex.task_id("b")].running and tasks[ex.task_id("a")].exit_code == 0
        res = await c.sweep(ex.task_id("b"))
        assert res.remaining == 0
        await c.ack([ex.task_id("a"), ex.task_id("b")])
        assert await c.list_tasks() == []
        for x in clients:
            await x.close()

    try:
        asyncio.run(scenario())
    finally:
        for pid in pids:
            _stop(pid)


def test_no_start_when_not_asked(make_executor) -> None:  # type: ignore[no-untyped-def]
    ex: Executor = make_executor(start=False)

    async def scenario() -> None:
        with pytest.raises(ExecutorUnavailable):
            await ExecutorClient.connect(ex.dir, ex.cgroup_name, None, start_if_missing=False)

    asyncio.run(scenario())


def test_client_against_running_executor(any_executor: Executor) -> None:
    ex = any_executor

    async def scenario() -> None:
        c = await ExecutorClient.connect(ex.dir, ex.cgroup_name, None, start_if_missing=False)
        assert c.info is not None and c.info.executor_pid == ex.pid
        r = await c.spawn(_spec(ex, "s", ["sleep", "1000"]))
        again = await c.spawn(_spec(ex, "s", ["/bin/false"]))
        assert again.existing and again.pid == r.pid
        assert [s.task_id for s in await c.stats()] == [ex.task_id("s")]
        events = c.events()  # subscribe before the exit can happen
        assert await c.signal(ex.task_id("s"), "KILL") is True
        ev = await asyncio.wait_for(events.__anext__(), 10)
        assert ev.signal == 9 and not ev.oom
        assert (await c.ack([ex.task_id("s")])).forgotten == [ex.task_id("s")]
        await c.close()

    asyncio.run(scenario())
