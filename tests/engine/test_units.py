"""Pure units: ids, config, allocator (DRF, ports), crash points, the client's imports."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dshell.errors import ConfigError
from dshell.model import Resources

from dshell_local import config, ids
from dshell_local.allocator import Allocator
from dshell_local.config import AgentSpec, RoleConfig
from dshell_local.crash import CrashPoints
from dshell_local.framework import MetaFramework


def agent(ident: str = "a1", cpus: float = 4, ports: tuple[int, int] = (0, 0)) -> AgentSpec:
    return AgentSpec(
        id=ident, hostname=ident, cpus=cpus, mem=4096, disk=1000, ports=[ports] if ports[0] else []
    )


def test_ids_are_ordered_unique_and_path_safe() -> None:
    gen = ids.IdGenerator()
    made = [gen.new_id("my app/../x") for _ in range(2000)]
    assert len(set(made)) == 2000 and made == sorted(made)
    assert all(ids.is_safe_id(i) and "/" not in i and ".." not in i for i in made)
    assert made[0].startswith("my-app-x.")
    later = ids.IdGenerator()
    later.observe(made[-1])
    assert later.new_id("my-app-x") > made[-1]
    assert ids.default_name(["/usr/bin/python3", "-c", "x"], False) == "python3"
    assert ids.default_name(["echo hi | wc"], True) == "echo"


def test_config_defaults_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.load(tmp_path / "missing.toml")
    assert len(cfg.agents) == 1 and cfg.agents[0].id == "local"
    assert cfg.agents[0].ports == [(31000, 32000)] and cfg.agents[0].cpus >= 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[[agents]]\ncpus = 'many'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*agents\[0\]\.cpus"):
        config.load(bad)
    bad.write_text("[engine]\nno_such_key = 1\n")
    with pytest.raises(ConfigError, match="no_such_key"):
        config.load(bad)
    monkeypatch.setenv("DSHELL_ENGINE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="not found"):
        config.load()


def _fill(alloc: Allocator, fw: MetaFramework, role: str, n: int) -> None:
    for i in range(n):
        fw.add(f"{role}{i}", role, Resources(cpus=1, mem=10))


def test_drf_gives_freed_resources_by_weighted_share() -> None:
    alloc = Allocator([agent(cpus=8)], {"a": RoleConfig(weight=1), "b": RoleConfig(weight=3)})
    fw = MetaFramework()
    _fill(alloc, fw, "a", 8)
    _fill(alloc, fw, "b", 8)
    grants = alloc.cycle([fw])
    per_role = {r: sum(1 for g in grants if g.role == r) for r in ("a", "b")}
    assert per_role == {"a": 2, "b": 6}  # shares 2/8/1 == 6/8/3
    assert alloc.share("a") == pytest.approx(alloc.share("b"))
    assert fw.demand() == {"a": 6, "b": 2}


def test_one_role_takes_what_fits_and_the_rest_waits() -> None:
    alloc = Allocator([agent(cpus=2), agent("a2", cpus=1)], {})
    fw = MetaFramework()
    _fill(alloc, fw, "*", 5)
    grants = alloc.cycle([fw])
    assert sorted(g.agent_id for g in grants) == ["a1", "a1", "a2"]
    assert "cpus 1 > free 0" in alloc.explain(Resources(cpus=1, mem=10))
    alloc.release(grants[0].task_id)
    assert len(alloc.cycle([fw])) == 1


def test_ports_are_test_bound_and_held_until_freed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    if base > 65000:
        base = 40000
    alloc = Allocator([agent(ports=(base, base + 2))], {})
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("", base))
        squatter.listen()
        g1 = alloc.allocate("t1", "a1", "*", Resources(cpus=0.1, ports=1))
        assert g1 is not None and g1.ports == [base + 1]  # base is taken by someone else
    g2 = alloc.allocate("t2", "a1", "*", Resources(cpus=0.1, ports=1))
    assert g2 is not None and g2.ports == [base + 2]
    alloc.release("t1")  # t1 ended, but its processes may still hold the port
    g3 = alloc.allocate("t3", "a1", "*", Resources(cpus=0.1, ports=1))
    assert g3 is not None and g3.ports == [base]
    assert alloc.allocate("t4", "a1", "*", Resources(cpus=0.1, ports=1)) is None
    alloc.free_ports("t1")
    g4 = alloc.allocate("t4", "a1", "*", Resources(cpus=0.1, ports=1))
    assert g4 is not None and g4.ports == [base + 1]


def test_crash_point_spec() -> None:
    assert CrashPoints(None).name is None
    point = CrashPoints("after_spawn:3")
    assert (point.name, point.remaining) == ("after_spawn", 3)
    point.hit("after_commit")  # another point: nothing happens
    with pytest.raises(ValueError, match="unknown crash point"):
        CrashPoints("nowhere")


def test_the_cli_client_stays_light() -> None:
    code = (
        "import sys; import dshell_local.backend, dshell_local.control, dshell_local.client; "
        "print(sorted(m for m in ('asyncio', 'aiohttp', 'psutil', 'sqlite3') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_task_history_is_trimmed_to_the_newest_finished(tmp_path: Path) -> None:
    from dshell_local.state import Store

    store = Store(tmp_path / "engine.db")
    for i in range(10):
        active = i in (0, 5, 9)  # old active tasks are never forgotten
        store.put_task(f"t{i}", active, None, (b"{}", b"{}", b"{}"))
    store.commit_now()
    assert store.trim_tasks(keep=2) == 5  # finished: t1-t4, t6-t8; the newest two stay
    store.commit_now()
    kept = [row.decode() for row in store.all_tasks_json()]
    assert len(kept) == 5
    assert store.trim_tasks(keep=2) == 0
    ids = [r[0] for r in store._db.execute("SELECT id FROM tasks ORDER BY n")]
    assert ids == ["t0", "t5", "t7", "t8", "t9"]
    store.close()


@pytest.mark.parametrize(
    "ns",
    [
        0,
        1_764_150_000_000_000_000,  # a whole second: .000000
        1_764_150_000_999_999_999,  # the last microsecond of it
        1_764_150_001_000_000_000,  # the next second (the cached text must change)
        1_764_150_000_000_001_000,  # back in the earlier second
        1_798_761_599_123_456_789,  # 2026-12-31T23:59:59 (the year turns next)
    ],
)
def test_utcnow_prints_what_isoformat_prints(ns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt
    import time

    from dshell_local import tasks

    monkeypatch.setattr(time, "time_ns", lambda: ns)
    expected = dt.datetime.fromtimestamp(ns // 1000 / 1e6, dt.UTC)
    expected = expected.replace(microsecond=ns // 1000 % 1_000_000)
    text = expected.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert tasks.utcnow() == text
    assert tasks.utcnow() == text  # from the cached second too
