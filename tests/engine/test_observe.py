"""Events, stats, agents, exec and isolation through the real engine."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from dshell.backend import Mount
from dshell.errors import ConflictError
from dshell.model import Resources, TaskState, TaskStats

from dshell_local import control
from dshell_local.backend import LocalBackend
from dshell_local.client import EngineClient

from .conftest import need, wait_until
from .helpers import sh, spec

pytestmark = pytest.mark.engine


def test_events_are_gap_free_and_resumable(engine: EngineClient) -> None:
    task = engine.submit(spec("true"))[0]
    engine.wait(task.id, 30)
    events = list(engine.events(since=0))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    mine = [(e.type, e.task.state) for e in events if e.task and e.task.id == task.id]
    assert mine == [
        ("TASK_ADDED", TaskState.STAGING),
        ("TASK_UPDATED", TaskState.STARTING),
        ("TASK_UPDATED", TaskState.RUNNING),
        ("TASK_UPDATED", TaskState.FINISHED),
    ]
    assert [e.seq for e in engine.events(since=2)] == [e.seq for e in events[2:]]
    follower = engine.events(since=events[-1].seq, follow=True)
    second = engine.submit(spec("true"))[0]
    first_new = next(follower)
    assert first_new.seq == events[-1].seq + 1 and first_new.task and first_new.task.id == second.id


def test_stats_and_agents_usage(engine: EngineClient) -> None:
    busy = engine.submit(sh("while :; do :; done", resources=Resources(cpus=0.5, mem=64)))[0]
    fat = engine.submit(
        spec(
            "python3", "-c", "import time; x = bytearray(40 << 20); time.sleep(300)",
            resources=Resources(cpus=0.1, mem=128),
        )
    )[0]  # fmt: skip

    def sample(task_id: str, check: Callable[[TaskStats], bool]) -> TaskStats | None:
        found = [s for s in engine.stats() if s.task_id == task_id and check(s)]
        return found[0] if found else None

    hot = wait_until(lambda: sample(busy.id, lambda s: s.cpu_percent > 5), what="cpu use")
    assert isinstance(hot, TaskStats)
    assert hot.allocated.cpus == 0.5 and hot.allocated.mem == 64 and hot.processes >= 1
    big = wait_until(lambda: sample(fat.id, lambda s: s.rss > 30), what="40 MiB resident")
    assert isinstance(big, TaskStats) and big.rss < 128
    agent = engine.agents()[0]
    assert agent.allocated.cpus == pytest.approx(0.6) and agent.allocated.mem == 192
    assert agent.used.cpus > 0 and agent.used.mem > 30 and agent.tasks == 2
    engine.kill(busy.id, grace=0)
    engine.kill(fat.id, grace=0)


def test_exec_runs_in_the_task_sandbox_env_and_cgroups(engine: EngineClient) -> None:
    task = engine.submit(spec("sleep", "300"))[0]
    wait_until(lambda: engine.get_task(task.id).state is TaskState.RUNNING)
    backend = LocalBackend(Mount(target="/local", type="local"))
    handle = backend.exec(
        task.id, ["sh", "-c", "echo $DSHELL_TASK_ID; pwd; cat /proc/self/cgroup; exit 3"]
    )
    out = b"".join(c.data for c in handle.chunks() if c.stream == "stdout").decode()
    assert handle.status() == 3
    lines = out.splitlines()
    assert lines[0] == task.id and lines[1] == engine.get_task(task.id).sandbox
    if engine.status().isolation.kind == "cgroup-v1":
        assert any("memory:" in line and task.id in line for line in lines)
    cat = backend.exec(task.id, ["cat"])
    cat.write_stdin(b"hello")
    cat.write_stdin(b"")
    assert b"".join(c.data for c in cat.chunks()) == b"hello"
    assert cat.status() == 0
    tty = backend.exec(task.id, ["sh", "-c", "test -t 0 && tty"], tty=True)
    text = b"".join(c.data for c in tty.chunks()).decode()
    assert tty.status() == 0 and "/dev/pts/" in text
    engine.kill(task.id, grace=0)
    engine.wait(task.id, 30)
    with pytest.raises(ConflictError):
        backend.exec(task.id, ["true"])
    backend.close()


def test_memory_limit_is_oom_and_outside_sigkill_is_not(engine: EngineClient) -> None:
    need(engine.status().isolation.kind == "cgroup-v1", "memory limits need cgroups (root)")
    hog = engine.submit(
        spec(
            "python3",
            "-c",
            "x = bytearray(300 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096])",
            resources=Resources(cpus=0.5, mem=64),
        )
    )[0]
    done = engine.wait(hog.id, 60)
    assert done.state is TaskState.FAILED
    assert done.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    victim = engine.submit(spec("sleep", "300"))[0]
    pid = wait_until(lambda: engine.get_task(victim.id).pid)
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    killed = engine.wait(victim.id, 30)
    assert killed.state is TaskState.FAILED and killed.signal == signal.SIGKILL
    assert killed.reason == "REASON_COMMAND_EXECUTOR_FAILED"


def test_full_disk_fails_the_task_with_a_reason(engine: EngineClient, tmp_path: Path) -> None:
    need(os.getuid() == 0, "mounting a tmpfs needs root")
    root = tmp_path / "state" / "sandboxes"
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=8", "tmpfs", str(root)],
                   check=True)  # fmt: skip
    try:
        with pytest.raises(OSError):
            for i in range(100):
                (root / f"fill{i}").mkdir()
        task = engine.submit(spec("true"))[0]
        done = engine.wait(task.id, 30)
        assert done.state is TaskState.FAILED and done.reason == "REASON_SANDBOX_ERROR"
        assert "No space left" in (done.message or "")
        assert engine.ping()
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tcp_listener_needs_tls_and_token(engine_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    need(shutil.which("openssl") is not None, "openssl makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    token = "t0ken-" + "x" * 20
    engine_config(
        f'[api.tcp]\nlisten = "127.0.0.1:{port}"\ncert = "{cert}"\nkey = "{key}"\n'
        f'token = "{token}"\n'
    )
    control.start()
    ctx = ssl.create_default_context(cafile=str(cert))

    def get(headers: dict[str, str]) -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("GET", "/v1/tasks", headers=headers)
        status = conn.getresponse().status
        conn.close()
        return status

    assert get({}) == 401
    assert get({"Authorization": "Bearer wrong"}) == 401
    assert get({"Authorization": f"Bearer {token}"}) == 200
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/v1/tasks")
        plain.getresponse()


def test_tcp_without_tls_is_a_config_error(engine_config) -> None:  # type: ignore[no-untyped-def]
    from dshell.errors import ConfigError

    engine_config('[api.tcp]\nlisten = "127.0.0.1:7999"\ntoken = "' + "x" * 20 + '"\n')
    with pytest.raises(ConfigError, match="TLS"):
        control.start()


def test_roles_and_frameworks(engine_config) -> None:  # type: ignore[no-untyped-def]
    engine_config("[roles.prod]\nweight = 3.0\n")
    control.start()
    with control.client() as c:
        task = c.submit(spec("sleep", "300", role="prod", resources=Resources(cpus=1, mem=8)))[0]
        wait_until(lambda: c.get_task(task.id).state is TaskState.RUNNING)
        roles = {r.name: r for r in c.roles()}
        assert roles["prod"].weight == 3.0 and roles["prod"].allocated["cpus"] == 1
        assert roles["prod"].share > 0
        assert [f.name for f in c.frameworks()] == ["dshell"]
        assert c.get_task(task.id).role == "prod" and c.get_task(task.id).framework_id == "dshell"
