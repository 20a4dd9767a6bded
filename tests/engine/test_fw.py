"""Nested frameworks on the embedded engine: ``fw launch engine`` for real.

A child engine runs as the service ``fw-NAME`` of the test engine, inside that task's share and
cgroups; it is mounted at ``/local/fw/NAME`` and used like ``/local``. Each test tears its
frameworks down and checks that no process of them is left.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dshell.errors import ExitCode
from dshell.testing.fixtures import CliRunner

from dshell_local import control
from dshell_local.client import EngineClient
from dshell_local.fwchild import engine_toml, port_ranges
from dshell_local.fwkind import OVERHEAD

from .conftest import need, pid_alive, sandbox_pids, wait_until
from .helpers import task

FW = "/local/fw/team-a"
MEM = 400  # MiB: room in the child for a few small tasks and an engine nested in it


def _leftovers(state: Path) -> list[int]:
    """Processes started for this test's engine (host tasks, child engines and their tasks):
    every one has a sandbox under the test's state dir in its environment."""
    return sandbox_pids(state)


def ok(cli: CliRunner, line: str, cwd: str = "/") -> str:
    res = cli(line, cwd=cwd)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def _rows(cli: CliRunner, line: str, cwd: str = "/") -> Any:
    return json.loads(ok(cli, line, cwd))


def _need_memory_cgroup(engine: EngineClient) -> None:
    iso = engine.status().isolation
    need(
        iso.kind.startswith("cgroup") and "memory" in iso.controllers,
        f"a memory cgroup for nested engines (isolation here: {iso.detail or iso.kind})",
    )


def _launch(cli: CliRunner, name: str = "team-a", *args: str) -> None:
    line = f"fw launch engine --name {name} --cpus 0.6 --mem {MEM} --disk 256 --timeout 60"
    ok(cli, " ".join([line, *args]))


def _fw_task(cli: CliRunner, host: str = "/local", name: str = "team-a") -> dict[str, Any]:
    rows = _rows(cli, f"ps {host} -o json")
    return next(t for t in rows if t["service"] == f"fw-{name}")


def _child_engine_pid(engine_dirs: Path, *names: str) -> int:
    runtime = engine_dirs.joinpath(*(p for n in names for p in ("fw", n)))
    return int((runtime / "engine.pid").read_text().split()[0])


@pytest.mark.engine
def test_launch_use_nest_and_remove(
    engine: EngineClient, cli: CliRunner, engine_dirs: Path, tmp_path: Path
) -> None:
    _need_memory_cgroup(engine)
    _launch(cli)
    # the mount row names the framework, never an address
    mount = next(m for m in _rows(cli, "mount --output json") if m["target"] == FW)
    assert mount["options"] == {"fw": "team-a", "host": "/local", "kind": "engine"}
    fws = _rows(cli, "fw ls -o json")
    assert [(f["name"], f["kind"], f["host"], f["state"], f["mount"]) for f in fws] == [
        ("team-a", "engine", "/local", "RUNNING", FW)
    ]
    assert fws[0]["resources"]["mem"] == MEM
    assert ok(cli, "ls /local/fw -o tsv").splitlines()[1].split("\t")[:2] == ["team-a", "framework"]

    # its agent holds the task's share minus the child's overhead, and the task's ports
    host_task = _fw_task(cli)
    child_agent = _rows(cli, f"nodes {FW} -o json")[0]
    assert child_agent["total"]["mem"] == MEM - OVERHEAD.mem
    assert child_agent["total"]["cpus"] == pytest.approx(0.6 - OVERHEAD.cpus)
    ports = sorted(p["port"] for p in host_task["ports"])
    assert [p for lo, hi in child_agent["port_ranges"] for p in range(lo, hi + 1)] == ports

    # used from inside (cd), exactly like /local: attached run, detached run, services
    assert ok(cli, "run -- echo hello", cwd=FW) == "hello\n"
    sleeper = ok(cli, "run -d --name sl -- sleep 300", cwd=FW).strip()
    ok(cli, "svc deploy --name web --cpus 0.05 --mem 16 --timeout 60 -- sleep 300", cwd=FW)
    assert [s["name"] for s in _rows(cli, "svc ls -o json", cwd=FW)] == ["web"]
    every = {t["id"]: t for t in _rows(cli, "ps / -o json")}
    assert every[sleeper]["mount"] == FW and every[sleeper]["parent_task"] == host_task["id"]
    assert every[host_task["id"]]["parent_task"] is None

    # live completion asks the framework itself for its ids, not its host
    from dshell.completion.live import fetch
    from dshell.namespace import MountTable
    from dshell.plugins import Registry

    row = next(m for m in MountTable().load() if m.target == FW)
    ids = fetch(Registry.discover(), row)
    assert ids.error is None and sleeper in ids.tasks and host_task["id"] not in ids.tasks
    assert ids.services == ("web",)

    # `top /` counts the framework's task once: its children are inside its cgroup
    snap = _rows(cli, "top / -n 1 -o json")
    listed = [s["task_id"] for s in snap["tasks"]]
    assert host_task["id"] in listed and sleeper not in listed
    assert sleeper in [s["task_id"] for s in _rows(cli, f"top {FW} -n 1 -o json")["tasks"]]

    # no room for it in the framework's share: refused at once, nothing deployed
    res = cli(f"fw launch engine --name inner --on {FW} --cpus 0.3 --mem 300 --disk 64")
    assert res.status == ExitCode.CONFLICT and "no room" in res.stderr, res.stderr
    assert [s["name"] for s in _rows(cli, f"svc ls {FW} -o json")] == ["web"]

    # two levels deep: an engine in the engine
    ok(cli, f"fw launch engine --name inner --on {FW} --cpus 0.3 --mem 200 --disk 64 --ports 2")
    deep = f"{FW}/fw/inner"
    assert ok(cli, f"run --on {deep} -- echo deep") == "deep\n"
    deep_sleeper = ok(cli, f"run -d --on {deep} -- sleep 300").strip()
    inner_task = _fw_task(cli, FW, "inner")
    assert inner_task["parent_task"] == host_task["id"]
    every = {t["id"]: t for t in _rows(cli, "ps / -o json")}
    assert every[deep_sleeper]["parent_task"] == inner_task["id"]
    assert {f["mount"] for f in _rows(cli, "fw ls -o json")} == {FW, deep}

    # a second launch of the same name, and bad input, change nothing
    res = cli("fw launch engine --name team-a")
    assert res.status == ExitCode.CONFLICT, res.stderr
    res = cli("fw launch engine --name Team_A")
    assert res.status == ExitCode.USAGE and "--name" in res.stderr
    res = cli("fw launch engine --name small --mem 64")
    assert res.status == ExitCode.USAGE and "--mem" in res.stderr
    res = cli("fw launch nosuchkind --name x")
    assert res.status == ExitCode.NOT_FOUND and "engine" in res.stderr

    # fw rm: both mounts go, and every process of both engines and their tasks
    ok(cli, "fw rm team-a")
    assert [m["target"] for m in _rows(cli, "mount --output json")] == ["/local"]
    assert _rows(cli, "fw ls -o json") == [] and _rows(cli, "svc ls /local -o json") == []
    wait_until(lambda: not _leftovers(tmp_path / "state"), 30, "no process left")
    assert not list((tmp_path / "state" / "volumes").iterdir())  # its state volume too
    assert not (engine_dirs / "fw" / "team-a").exists()


@pytest.mark.engine
def test_restarts_recover(
    engine: EngineClient, cli: CliRunner, engine_dirs: Path, tmp_path: Path
) -> None:
    _need_memory_cgroup(engine)
    _launch(cli)
    sleeper = ok(cli, f"run -d --on {FW} -- sleep 300").strip()
    first = _fw_task(cli)
    # `run -d` answers once the task is committed; killed before the spawn, the child would
    # relaunch it (recovery's other path, tested in test_recovery) rather than re-adopt it
    wait_until(lambda: task(cli, sleeper)["state"] == "RUNNING", 30, "the sleeper running")

    # the child's daemon dies: restarted in its task, it re-adopts its tasks
    pid = _child_engine_pid(engine_dirs, "team-a")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the child engine gone")
    wait_until(lambda: cli(f"ps {FW}").status == 0, 30, "the child engine back")
    assert _child_engine_pid(engine_dirs, "team-a") != pid
    assert task(cli, sleeper)["state"] == "RUNNING"
    assert _fw_task(cli)["id"] == first["id"]

    # the host engine restarts: the framework runs on, mounted
    control.stop()
    control.start()
    assert _rows(cli, "fw ls -o json")[0]["state"] == "RUNNING"
    assert task(cli, sleeper)["state"] == "RUNNING"

    # the framework's task dies: the host relaunches it (same state volume) and the mount
    # finds it again without user action; what ran in the old task is gone (LOST)
    os.kill(first["pid"], signal.SIGKILL)

    def relaunched() -> bool:
        tasks = [t for t in _rows(cli, "ps /local -o json") if t["service"] == "fw-team-a"]
        return bool(tasks) and tasks[0]["id"] != first["id"] and tasks[0]["health"] == "HEALTHY"

    wait_until(relaunched, 60, "the framework relaunched")
    # What ran in the old task is gone: LOST when the child's executor died first (nobody saw
    # the exit), else recorded by it as killed by SIGKILL — the order of the host's sweep.
    old = wait_until(
        lambda: (t := task(cli, sleeper))["state"] in ("LOST", "FAILED", "KILLED") and t,
        60,
        "the old child task ended",
    )
    assert old["state"] == "LOST" or old["signal"] == signal.SIGKILL, old  # type: ignore[index]
    assert ok(cli, f"run --on {FW} -- echo again") == "again\n"
    ok(cli, "fw rm /local/fw/team-a")
    wait_until(lambda: not _leftovers(tmp_path / "state"), 30, "no process left")


@pytest.mark.engine
def test_oom_inside_the_child_spares_the_host(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    _need_memory_cgroup(engine)
    _launch(cli)
    host_task = _fw_task(cli)
    sibling = ok(cli, "run -d --on /local --mem 16 -- sleep 300").strip()
    # a child task's cgroups nest in the framework task's: the host's limit bounds it too
    sleeper = ok(cli, f"run -d --on {FW} -- sleep 300").strip()
    pid = wait_until(lambda: task(cli, sleeper).get("pid"), 30, "the child task's pid")
    with open(f"/proc/{pid}/cgroup", encoding="ascii") as fh:
        memory = next(line for line in fh if ":memory:" in line)
    assert f"/task-{host_task['id']}/" in memory
    # it allocates more than the framework's whole share
    hog = f"python3 -c 'bytearray({MEM + 100} << 20)'"  # zero-filled: every page touched
    res = cli(f'run --on {FW} --mem 100 --name hog --shell "{hog}"')
    assert res.status != 0
    hogged = next(t for t in _rows(cli, f"ps {FW} -a -o json") if t["name"] == "hog")
    assert hogged["state"] == "FAILED" and hogged["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert task(cli, sleeper)["state"] == "RUNNING"  # the child engine lives on
    assert task(cli, sibling)["state"] == "RUNNING"  # and so do the host's other tasks
    assert _fw_task(cli)["id"] == host_task["id"]
    ok(cli, "fw rm team-a")
    ok(cli, f"kill {sibling}")
    wait_until(lambda: not _leftovers(tmp_path / "state"), 30, "no process left")


@pytest.mark.engine
def test_unsupported_without_a_memory_cgroup(
    engine_dirs: Path, engine_config: Callable[[str], Path], cli: CliRunner
) -> None:
    engine_config('[engine]\nisolation = "rlimit"\n')
    control.start()
    res = cli("fw launch engine --name team-a --mem 320")
    assert res.status == ExitCode.UNSUPPORTED, res.stderr
    assert "memory cgroup" in res.stderr
    assert _rows(cli, "svc ls -o json") == []  # nothing half-launched
    assert [m["target"] for m in _rows(cli, "mount --output json")] == ["/local"]


def test_child_config_from_the_task_share() -> None:
    assert port_ranges([31005, 31000, 31001, 31002]) == [(31000, 31002), (31005, 31005)]
    text = engine_toml("team-a", 1.0, 512, 256, [31000, 31001, 31003])
    assert 'id = "team-a"' in text and f"mem = {512 - OVERHEAD.mem}" in text
    assert "ports = [[31000, 31001], [31003, 31003]]" in text


def test_unix_socket_checks_are_validated() -> None:
    from dshell.specs import SpecError, load_text

    good = '[service]\nname = "a"\ncommand = ["x"]\n[[service.health_checks]]\nunix_socket = "/s"\n'
    assert load_text(good, "a.toml").services[0].health_checks[0].unix_socket == "/s"
    for bad in ('unix_socket = "rel"', 'protocol = "TCP"\nunix_socket = "/s"'):
        text = f'[service]\nname = "a"\ncommand = ["x"]\n[[service.health_checks]]\n{bad}\n'
        with pytest.raises(SpecError, match="unix_socket"):
            load_text(text, "a.toml")


def test_http_check_over_a_unix_socket(tmp_path: Path) -> None:
    import asyncio

    from dshell_local.checks import unix_exchange

    path = str(tmp_path / "s.sock")

    async def main() -> tuple[int, bytes]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(answer, path)
        async with server:
            return await unix_exchange(path, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5.0, False)

    assert asyncio.run(main())[0] == 204
    with pytest.raises(OSError):
        asyncio.run(unix_exchange(str(tmp_path / "none"), b"", 1.0, False))
