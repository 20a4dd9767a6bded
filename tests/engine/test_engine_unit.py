"""Engine logic against the in-process fake executor (no daemon)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from dshell.errors import UsageError
from dshell.model import Resources, RunSpec, TaskState

from dshell_local import config, recovery
from dshell_local.config import AgentConfig, FileConfig, RoleConfig
from dshell_local.engine import Engine
from dshell_local.sandbox import Sandboxes
from dshell_local.state import Store
from dshell_local.tasks import TaskRecord

from .fakeexec import FakeExecutor


def make_engine(
    tmp: Path,
    fake: FakeExecutor,
    agents: list[AgentConfig] | None = None,
    roles: dict[str, RoleConfig] | None = None,
) -> Engine:
    cfg = config.resolve(FileConfig(agents=agents or [], roles=roles or {}), None)
    eng = Engine(cfg, Store(tmp / "engine.db"), fake, Sandboxes(tmp / "sandboxes"))
    recovery.load(eng)
    return eng


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


async def start(eng: Engine) -> None:
    await recovery.reconcile(eng)
    eng.set_ready()


def spec(*argv: str, **kw: object) -> RunSpec:
    kw.setdefault("resources", Resources(cpus=0.1, mem=32))
    return RunSpec(command=list(argv), **kw)  # type: ignore[arg-type]


def test_run_to_finished_and_failed(tmp_path: Path) -> None:
    async def body() -> None:
        fake = FakeExecutor()
        eng = make_engine(tmp_path, fake)
        await start(eng)
        (ok,), _ = await eng.submit(spec("/bin/true"))
        (bad,), _ = await eng.submit(spec("sh", "-c", "exit 7"))
        t1 = await eng.wait(ok.id, 10)
        t2 = await eng.wait(bad.id, 10)
        assert t1.state is TaskState.FINISHED and t1.exit_code == 0
        assert t2.state is TaskState.FAILED and t2.exit_code == 7
        assert [h.state for h in t1.history] == ["STAGING", "STARTING", "RUNNING", "FINISHED"]
        assert ok.name == "true" and bad.name == "sh"
        await eng.close()
        await fake.close()

    run(body)


def test_staging_reason_then_runs(tmp_path: Path) -> None:
    async def body() -> None:
        fake = FakeExecutor()
        eng = make_engine(tmp_path, fake, [AgentConfig(id="a1", cpus=1, mem=100, disk=100)])
        await start(eng)
        (big,), _ = await eng.submit(spec("sleep", "30", resources=Resources(cpus=1, mem=50)))
        (wait_,), _ = await eng.submit(spec("/bin/true", resources=Resources(cpus=0.5, mem=10)))
        await asyncio.sleep(0.1)
        waiting = eng.get(wait_.id)
        assert waiting.state is TaskState.STAGING
        assert waiting.message and "cpus 0.5 > free 0" in waiting.message
        with pytest.raises(UsageError, match="no agent can ever"):
            await eng.submit(spec("/bin/true", resources=Resources(cpus=2)))
        await eng.kill(big.id, grace=0.5)
        assert (await eng.wait(big.id, 10)).state is TaskState.KILLED
        assert (await eng.wait(wait_.id, 10)).state is TaskState.FINISHED
        await eng.close()
        await fake.close()

    run(body)


def test_idempotency_and_ports(tmp_path: Path) -> None:
    async def body() -> None:
        fake = FakeExecutor()
        eng = make_engine(tmp_path, fake)
        await start(eng)
        s = spec(
            "sh",
            "-c",
            "echo $PORT0 $PORT_HTTP $PORT $HOST $DSHELL_TASK_ID",
            ports=["http", ""],
            instances=3,
            idempotency_key="k1",
        )
        first, created = await eng.submit(s)
        again, created2 = await eng.submit(s)
        assert created and not created2
        assert [t.id for t in first] == [t.id for t in again]
        ports = []
        for t in first:
            done = await eng.wait(t.id, 10)
            out = (Path(done.sandbox or "") / "stdout").read_text().split()
            assert out[0] == out[1] == out[2] == str(done.ports[0].port)
            assert out[4] == t.id
            ports += [p.port for p in done.ports]
        assert len(set(ports)) == 6
        assert sum(fake.spawns.values()) == 3
        await eng.close()
        await fake.close()

    run(body)


def test_recovery_relaunches_committed_and_adopts_spawned(tmp_path: Path) -> None:
    async def body() -> None:
        fake = FakeExecutor()
        eng = make_engine(tmp_path, fake)
        await start(eng)
        (a,), _ = await eng.submit(spec("sleep", "30"))
        await asyncio.sleep(0.2)
        assert eng.get(a.id).state is TaskState.RUNNING
        # a second engine over the same database and executor (the first one "crashed")
        eng2 = make_engine(tmp_path, fake)
        outcome = await recovery.reconcile(eng2)
        eng2.set_ready()
        assert outcome == {"adopted": 1}
        await eng2.kill(a.id, grace=0.2)
        assert (await eng2.wait(a.id, 10)).state is TaskState.KILLED
        assert fake.spawns[a.id] == 1
        await eng2.close()
        await fake.close()

    run(body)


def test_signal_while_the_spawn_answer_is_in_flight(tmp_path: Path) -> None:
    """A task runs (and prints) before the executor's answer reaches the engine: a signal
    sent then waits for the answer instead of failing with 'not running (STARTING)'."""

    async def body() -> None:
        fake = FakeExecutor()
        fake.hold_answers = asyncio.Event()
        eng = make_engine(tmp_path, fake)
        await start(eng)
        (task,), _ = await eng.submit(spec("sleep", "30"))
        for _ in range(200):
            if fake.spawns[task.id]:
                break
            await asyncio.sleep(0.01)
        assert fake.spawns[task.id] == 1 and eng.get(task.id).state is TaskState.STARTING
        signal_sent = asyncio.ensure_future(eng.signal(task.id, 15))
        await asyncio.sleep(0.05)
        assert not signal_sent.done()  # waiting for the answer, not failed
        fake.hold_answers.set()
        await asyncio.wait_for(signal_sent, 10)
        assert fake.signals == [(task.id, 15)]
        ended = await eng.wait(task.id, 10)
        assert ended.signal == 15
        await eng.close()
        await fake.close()

    run(body)


def test_a_burst_launches_batch_by_batch_and_skips_a_task_killed_before_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle's grants are prepared and launched a batch per loop pass (the first batch is
    under way before the next is prepared); a granted task killed before its batch's turn is
    not launched, and its resources are back."""
    import dshell_local.engine as engine_mod

    monkeypatch.setattr(engine_mod, "LAUNCH_BATCH", 2)

    async def body() -> None:
        fake = FakeExecutor()
        eng = make_engine(tmp_path, fake, [AgentConfig(id="a1", cpus=4, mem=400, disk=100)])
        await start(eng)
        batches: list[list[str]] = []
        launch = eng.launch

        async def watched(recs: list[TaskRecord]) -> None:
            batches.append([r.task.id for r in recs])
            if len(batches) == 1:  # the first batch starts before the others are prepared
                later = [i for i, r in eng.records.items() if r.task.state is TaskState.STAGING]
                assert len(later) == 2
                assert eng.allocator.agents["a1"].free().cpus == 0  # yet all four are granted
                assert (await eng.kill(later[-1])).state is TaskState.KILLED
            await launch(recs)

        eng.launch = watched  # type: ignore[method-assign]
        tasks, _ = await eng.submit(spec("/bin/true", resources=Resources(cpus=1), instances=4))
        for t in tasks[:3]:
            assert (await eng.wait(t.id, 10)).state is TaskState.FINISHED
        ids = [t.id for t in tasks]
        assert batches == [ids[:2], ids[2:3]]
        assert set(fake.spawns) == set(ids[:3])
        assert eng.get(ids[3]).state is TaskState.KILLED
        assert eng.allocator.agents["a1"].free().cpus == 4
        await eng.close()
        await fake.close()

    run(body)
