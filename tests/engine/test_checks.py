"""Health checks, readiness checks and graceful shutdown (``dshell_local.checks``).

Real servers on 127.0.0.1 ephemeral ports, real processes, the real executor for COMMAND checks.
Assertions are on the order of events (changes reported, requests served), with small intervals
and generous bounded waits; none measures wall-clock time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil
import pytest
from dshell.specs.model import HealthCheckSpec, LifecycleSpec, ReadinessCheckSpec

from dshell_local.checks import (
    CheckConfigError,
    CheckTarget,
    HealthMonitor,
    HealthStatus,
    ReadinessMonitor,
    executor_runner,
    graceful_shutdown,
    run_local_command,
)
from dshell_local.execadapter import ClientPort, connect_executor
from dshell_local.execport import SpawnSpec
from dshell_local.executor.cgdiscover import discover

from .conftest import need, pid_alive

WAIT = 15.0  # bound on every wait for an event (the machines are shared and noisy)
_names = itertools.count()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))


def spec(**fields: Any) -> HealthCheckSpec:
    """A fast HTTP check: no delay, no grace, 0.05 s interval, 2 s timeout, kill after 3."""
    base: dict[str, Any] = {"delay": 0, "grace_period": 0, "interval": 0.05, "timeout": 2.0}
    return HealthCheckSpec(**{**base, **fields})


class Changes:
    """Records on_change calls, in order; ``next()`` waits for the next one."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def __call__(self, task_id: str, status: Any) -> None:
        self.seen.append((task_id, status))
        self._queue.put_nowait(status)

    async def next(self) -> Any:
        return await asyncio.wait_for(self._queue.get(), WAIT)


class Web:
    """A tiny HTTP server whose answer the test changes; records every request in order."""

    def __init__(self, status: int = 200, body: bytes = b"ok") -> None:
        self.status = status
        self.body = body
        self.hang = False  # accept, read the request, never answer
        self.chunked = False
        self.requests: list[tuple[str, str]] = []
        self.arrived: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.client_left: asyncio.Queue[None] = asyncio.Queue()
        self.on_request: Callable[[str, str], None] | None = None
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def next_request(self) -> tuple[str, str]:
        return await asyncio.wait_for(self.arrived.get(), WAIT)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            self.requests.append((method, path))
            self.arrived.put_nowait((method, path))
            if self.on_request is not None:
                self.on_request(method, path)
            if self.hang:
                await reader.read()  # until the client goes away
                self.client_left.put_nowait(None)
                return
            if self.chunked:
                head = "Transfer-Encoding: chunked"
                payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(self.body), self.body)
            else:
                head, payload = f"Content-Length: {len(self.body)}", self.body
            writer.write(f"HTTP/1.1 {self.status} X\r\n{head}\r\n\r\n".encode() + payload)
            await writer.drain()
        except (OSError, ValueError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


def client_sockets_to(port: int) -> list[Any]:
    """This process's TCP sockets connected *to* ``port`` (the checks' side)."""
    return [
        c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr[1] == port
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def target(port: int = 0, **fields: Any) -> CheckTarget:
    return CheckTarget(task_id=f"t{next(_names)}", port_list=[port], ports={"http": port}, **fields)


async def watched(
    web: Web, check: HealthCheckSpec, **watch: Any
) -> tuple[HealthMonitor, Changes, CheckTarget]:
    changes = Changes()
    mon = HealthMonitor(None, changes)
    tgt = target(await web.start() if not web.port else web.port)
    mon.watch(tgt, [check], **watch)
    return mon, changes, tgt


# ---------------------------------------------------------------- HTTP health


def test_healthy_then_failures_counted_until_kill() -> None:
    async def scenario() -> None:
        web = Web()
        mon, changes, tgt = await watched(web, spec(max_consecutive_failures=3))
        first = await changes.next()
        assert (first.healthy, first.kill, first.message) == (True, False, "HTTP 200")
        web.status = 500
        down = await changes.next()
        assert (down.healthy, down.consecutive_failures, down.kill) == (False, 1, False)
        assert down.message == "HTTP 500"
        dead = await changes.next()
        assert (dead.healthy, dead.consecutive_failures, dead.kill) == (False, 3, True)
        assert mon.status(tgt.task_id) == dead
        served = len(web.requests)
        await asyncio.sleep(0.3)  # 6 intervals: a killed instance is checked no more
        assert len(web.requests) == served
        assert [s.kill for _, s in changes.seen] == [False, False, True]
        await mon.close()
        await web.close()

    run(scenario())


def test_zero_max_failures_never_kills() -> None:
    async def scenario() -> None:
        web = Web(status=503)
        mon, changes, tgt = await watched(web, spec(max_consecutive_failures=0))
        down = await changes.next()
        assert (down.healthy, down.kill) == (False, False)
        for _ in range(6):
            await web.next_request()
        status = mon.status(tgt.task_id)
        assert status is not None and status.consecutive_failures >= 5 and not status.kill
        assert len(changes.seen) == 1  # counting on, nothing changed
        await mon.close()
        await web.close()

    run(scenario())


def test_a_success_resets_the_count() -> None:
    async def scenario() -> None:
        web = Web(status=500)
        hits = 0

        def flip(method: str, path: str) -> None:  # 2 failures, 1 success, 2 failures, …
            nonlocal hits
            hits += 1
            web.status = 200 if hits % 3 == 0 else 500

        web.on_request = flip
        mon, changes, tgt = await watched(web, spec(max_consecutive_failures=3))
        for _ in range(6):
            await changes.next()
        assert [(s.healthy, s.kill) for _, s in changes.seen] == [(False, False), (True, False)] * 3
        status = mon.status(tgt.task_id)
        assert status is not None and status.consecutive_failures <= 2
        await mon.close()
        await web.close()

    run(scenario())


def test_grace_period_ignores_early_failures_until_the_first_success() -> None:
    async def scenario() -> None:
        web = Web(status=500)
        mon, changes, tgt = await watched(web, spec(grace_period=0.5))
        await web.next_request()
        await web.next_request()
        status = mon.status(tgt.task_id)
        assert status is not None and status.healthy is None and status.consecutive_failures == 0
        assert status.message == "HTTP 500 (in the grace period: not counted)"
        down = await changes.next()  # the grace period is over: counted now
        assert (down.healthy, down.consecutive_failures) == (False, 1)
        assert len(web.requests) >= 3  # two or more early failures were ignored
        await mon.close()

        # A success ends the grace period at once: the next failure counts.
        web.status = 200
        mon, changes, tgt = await watched(web, spec(grace_period=3600))
        assert (await changes.next()).healthy is True
        web.status = 500
        down = await changes.next()
        assert (down.healthy, down.consecutive_failures) == (False, 1)
        await mon.close()
        await web.close()

    run(scenario())


def test_delay_defers_the_first_check() -> None:
    async def scenario() -> None:
        web = Web()
        mon, _, tgt = await watched(web, spec(delay=3600))
        await asyncio.sleep(0.3)
        assert web.requests == [] and mon.status(tgt.task_id) == HealthStatus()
        await mon.close()

        # The delay counts from the task's start: one that started long ago is checked at once.
        changes = Changes()
        mon = HealthMonitor(None, changes)
        started = asyncio.get_running_loop().time() - 7200
        mon.watch(target(web.port), [spec(delay=3600)], started_at_monotonic=started)
        assert (await changes.next()).healthy is True
        await mon.close()
        await web.close()

    run(scenario())


def test_hanging_server_fails_at_the_timeout_and_leaves_no_socket() -> None:
    async def scenario() -> None:
        web = Web()
        web.hang = True
        sockets_at_failure: list[int] = []
        changes = Changes()

        def on_change(task_id: str, status: HealthStatus) -> None:
            sockets_at_failure.append(len(client_sockets_to(web.port)))
            changes(task_id, status)

        mon = HealthMonitor(None, on_change)
        mon.watch(target(await web.start()), [spec(timeout=0.2, interval=3600)])
        await web.next_request()
        down = await changes.next()
        assert (down.healthy, down.message) == (False, "timed out")
        assert sockets_at_failure == [0]  # closed by the time the failure is reported
        await asyncio.wait_for(web.client_left.get(), WAIT)  # the server saw it go
        await mon.close()
        await web.close()

    run(scenario())


def test_expected_status_and_response() -> None:
    async def scenario() -> None:
        web = Web(status=503, body=b"  OK\n")
        mon, changes, _ = await watched(web, spec(expected_status=503, expected_response="ok"))
        assert (await changes.next()).healthy is True
        await mon.close()

        web.chunked = True  # the body is decoded from chunks too
        mon, changes, _ = await watched(web, spec(expected_status=503, expected_response="ok"))
        assert (await changes.next()).healthy is True
        await mon.close()

        web.body = b"busy"
        mon, changes, _ = await watched(web, spec(expected_status=503, expected_response="ok"))
        down = await changes.next()
        assert down.healthy is False and "'busy' is not 'ok'" in (down.message or "")
        await mon.close()

        web.status, web.body = 200, b"ok"
        mon, changes, _ = await watched(web, spec(expected_status=503))
        down = await changes.next()
        assert (down.healthy, down.message) == (False, "HTTP 200, expected 503")
        await mon.close()
        await web.close()

    run(scenario())


def test_https_without_certificate_verification(tmp_path: Path) -> None:
    need(shutil.which("openssl") is not None, "openssl makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=nowhere.invalid", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    async def scenario() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        web = Web(body=b"ok")
        await web.start(tls=ctx)
        mon, changes, _ = await watched(web, spec(protocol="HTTPS", expected_response="ok"))
        assert (await changes.next()).healthy is True
        await mon.close()
        mon, changes, _ = await watched(web, spec(protocol="HTTP", timeout=1))  # plain to TLS
        assert (await changes.next()).healthy is False
        await mon.close()
        await web.close()

    run(scenario())


def test_tcp_refused_and_accepted() -> None:
    async def scenario() -> None:
        web = Web()
        port = await web.start()
        changes = Changes()
        mon = HealthMonitor(None, changes)
        up, down = target(port), target(closed_port())
        mon.watch(up, [spec(protocol="TCP")])
        mon.watch(down, [spec(protocol="TCP")])
        await changes.next()
        await changes.next()
        got = dict(changes.seen)
        assert (got[up.task_id].healthy, got[up.task_id].message) == (True, "connected")
        assert (got[down.task_id].healthy, got[down.task_id].message) == (
            False,
            "connection refused",
        )
        await mon.close()
        await web.close()

    run(scenario())


def test_restart_continues_from_the_persisted_status() -> None:
    async def scenario() -> None:
        web = Web()
        was_healthy = HealthStatus(healthy=True, message="before the restart")
        mon, changes, tgt = await watched(web, spec(grace_period=3600), initial=was_healthy)
        await web.next_request()
        await web.next_request()
        assert changes.seen == []  # healthy it was, healthy it stays
        web.status = 500  # no grace period any more: the first failure counts
        down = await changes.next()
        assert (down.healthy, down.consecutive_failures) == (False, 1)
        await mon.close()

        doomed = HealthStatus(healthy=False, consecutive_failures=3, kill=True)
        mon, changes, tgt = await watched(web, spec(), initial=doomed)
        await asyncio.sleep(0.2)
        assert mon.status(tgt.task_id) == doomed and changes.seen == []
        await mon.close()
        await web.close()

    run(scenario())


def test_several_checks_and_unwatch() -> None:
    async def scenario() -> None:
        web = Web()
        port = await web.start()
        changes = Changes()
        mon = HealthMonitor(None, changes)
        tgt = target(port)
        tcp_down = spec(protocol="TCP", port=closed_port(), max_consecutive_failures=2)
        mon.watch(tgt, [spec(path="/health"), tcp_down])
        down = await changes.next()  # one failing check makes the instance unhealthy
        assert down.healthy is False
        dead = await changes.next()
        assert dead.kill is True and dead.message == "connection refused"
        assert ("GET", "/health") in web.requests
        mon.unwatch(tgt.task_id)
        assert mon.status(tgt.task_id) is None
        await mon.close()
        await web.close()

    run(scenario())


def test_bad_specs_are_refused_at_watch() -> None:
    async def scenario() -> None:
        mon = HealthMonitor(None, Changes())
        for bad in (
            spec(port_name="admin"),
            spec(port_index=3),
            spec(protocol="COMMAND"),
            spec(protocol="UDP"),
            spec(interval=0),
        ):
            with pytest.raises(CheckConfigError):
                mon.watch(target(80), [bad])
        readiness = ReadinessMonitor(Changes())
        with pytest.raises(CheckConfigError):
            readiness.watch(target(80), [ReadinessCheckSpec(port_name="nope")])
        await mon.close()

    run(scenario())


# ---------------------------------------------------------------- readiness


def test_readiness_flips_once_then_stops_checking() -> None:
    async def scenario() -> None:
        web = Web(status=503)
        await web.start()
        changes = Changes()
        mon = ReadinessMonitor(changes)
        tgt = target(web.port)
        check = ReadinessCheckSpec(port_name="http", path="/ready", interval=0.05, timeout=2)
        mon.watch(tgt, [check])
        await web.next_request()
        status = mon.status(tgt.task_id)
        assert status is not None and not status.ready
        web.status = 200
        assert await changes.next() is True
        served = len(web.requests)
        await asyncio.sleep(0.3)
        assert len(web.requests) == served and changes.seen == [(tgt.task_id, True)]
        status = mon.status(tgt.task_id)
        assert status is not None and status.ready and status.message == "readinessCheck: HTTP 200"
        await mon.close()

        # The first check runs at once (not after the 1-hour interval).
        mon = ReadinessMonitor(changes)
        slow = ReadinessCheckSpec(port_name="http", interval=3600, preserve_last_response=True)
        mon.watch(tgt, [slow])
        assert await changes.next() is True
        status = mon.status(tgt.task_id)
        assert status is not None and status.last_response == "ok"
        await mon.close()
        await web.close()

    run(scenario())


# ---------------------------------------------------------------- graceful shutdown


def test_graceful_shutdown_posts_in_order() -> None:
    async def scenario() -> None:
        web = Web()
        await web.start()
        life = LifecycleSpec(graceful_shutdown_wait=0.05, shutdown_wait=0.05)
        await asyncio.wait_for(
            graceful_shutdown("127.0.0.1", web.port, life, asyncio.Event()), WAIT
        )
        assert web.requests == [("POST", "/quitquitquit"), ("POST", "/abortabortabort")]
        await web.close()

    run(scenario())


def test_graceful_shutdown_returns_when_the_process_exits() -> None:
    async def scenario() -> None:
        web = Web()
        await web.start()
        exited = asyncio.Event()
        web.on_request = lambda method, path: exited.set()  # it quits on the first POST
        life = LifecycleSpec(graceful_shutdown_wait=3600, shutdown_wait=3600)
        await asyncio.wait_for(graceful_shutdown("127.0.0.1", web.port, life, exited), WAIT)
        assert web.requests == [("POST", "/quitquitquit")]
        await web.close()

    run(scenario())


def test_graceful_shutdown_moves_on_after_errors() -> None:
    async def scenario() -> None:
        life = LifecycleSpec(graceful_shutdown_wait=0.01, shutdown_wait=0.01)
        await asyncio.wait_for(
            graceful_shutdown("127.0.0.1", closed_port(), life, asyncio.Event()), WAIT
        )
        web = Web()
        web.hang = True  # each POST times out after SIGNAL_TIMEOUT; both are still sent
        await web.start()
        await asyncio.wait_for(
            graceful_shutdown("127.0.0.1", web.port, life, asyncio.Event()), WAIT
        )
        assert [p for _, p in web.requests] == ["/quitquitquit", "/abortabortabort"]
        await web.close()

    run(scenario())


# ---------------------------------------------------------------- COMMAND checks


# A check that records where it ran, then exits with the status in ./code.
SCRIPT = (
    "pwd > where; echo $DSHELL_TASK_ID > env; cat /proc/self/cgroup > cg; "
    'exit "$(cat code 2>/dev/null || echo 0)"'
)


async def dies(pid: int) -> None:
    """Wait (bounded) until ``pid`` is gone or a zombie: a SIGKILL takes effect asynchronously."""
    for _ in range(int(WAIT / 0.02)):
        if not pid_alive(pid):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"pid {pid} is still alive")


def _read(sandbox: Path, name: str) -> str:
    return (sandbox / name).read_text().strip()


async def _command_checks(
    mon_of: Callable[[Changes], HealthMonitor], tgt: CheckTarget, sandbox: Path
) -> tuple[HealthMonitor, Changes]:
    """The shared COMMAND scenario: healthy, exit code honoured, hanging check killed."""
    changes = Changes()
    mon = mon_of(changes)
    mon.watch(tgt, [spec(protocol="COMMAND", command=SCRIPT, interval=0.1)])
    up = await changes.next()
    assert (up.healthy, up.message) == (True, "command exited with status 0")
    assert _read(sandbox, "where") == str(sandbox)
    assert _read(sandbox, "env") == tgt.task_id
    (sandbox / "code").write_text("3\n")
    down = await changes.next()
    assert (down.healthy, down.message) == (False, "command exited with status 3")
    mon.unwatch(tgt.task_id)

    hang = spec(
        protocol="COMMAND", command="echo $$ > hung; exec sleep 1000", timeout=0.3, interval=3600
    )
    mon.watch(tgt, [hang])
    timed_out = await changes.next()
    assert (timed_out.healthy, timed_out.message) == (False, "command timed out after 0.3 s")
    await dies(int(_read(sandbox, "hung")))
    return mon, changes


def test_command_checks_run_locally_without_an_executor(tmp_path: Path) -> None:
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    tgt = CheckTarget(
        task_id="local-1",
        sandbox=str(sandbox),
        env={"PATH": os.environ["PATH"], "DSHELL_TASK_ID": "local-1"},
    )

    async def scenario() -> None:
        mon, _ = await _command_checks(lambda ch: HealthMonitor(None, ch), tgt, sandbox)
        await mon.close()
        # the group goes too: a background child of a finished check does not survive it
        code = await run_local_command(tgt, "sleep 1000 & echo $! > bg", 10)
        assert code == 0
        await dies(int(_read(sandbox, "bg")))

    run(scenario())


def _cgroups_usable() -> bool:
    if os.geteuid() != 0:
        return False
    probe = discover(f"dchkprobe-{os.getpid()}")
    for h in probe.hierarchies:
        os.rmdir(h.parent)
    return probe.kind != "rlimit"


def test_command_checks_run_in_the_task_cgroups_through_the_executor(
    engine_dirs: Path, tmp_path: Path
) -> None:
    need(_cgroups_usable(), "cgroups (v1 memory/cpu/pids, as root) for the executor")
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    cgroup_name = f"dchk{os.getpid()}-{next(_names)}"
    task_id = f"{cgroup_name}-svc"
    env = {"PATH": os.environ["PATH"], "DSHELL_TASK_ID": task_id}

    async def scenario() -> None:
        port: ClientPort = await connect_executor(
            engine_dirs, cgroup_name, tmp_path / "executor.log", idle_exit=0
        )
        try:
            await _with_task(port)
        finally:
            await port.sweep(task_id)
            await _ack_when_exited(port)
            await port.close()

    async def _with_task(port: ClientPort) -> None:
        [spawned] = await port.spawn_batch([SpawnSpec(
            task_id=task_id, argv=["sleep", "1000"], env=env, cwd=str(sandbox),
            stdout=str(sandbox / "stdout"), stderr=str(sandbox / "stderr"),
        )])  # fmt: skip
        assert not isinstance(spawned, Exception)
        tgt = CheckTarget(task_id=task_id, sandbox=str(sandbox), env=env)
        mon, changes = await _command_checks(
            lambda ch: HealthMonitor(executor_runner(port), ch), tgt, sandbox
        )
        memory = next(ln for ln in _read(sandbox, "cg").splitlines() if ":memory:" in ln)
        assert memory.endswith(f"/{cgroup_name}/task-{task_id}")  # the task's own cgroup
        paths = await port.client.cgroup_paths(task_id) if port.client else []
        procs = Path(paths[0], "cgroup.procs").read_text().split()
        assert procs == [str(spawned.pid)]  # nothing of the checks is left in it
        # a check that cannot start in the task (its sandbox is gone) is a counted failure
        lost = CheckTarget(task_id=task_id, sandbox="/nonexistent/sandbox", env=env)
        mon.watch(lost, [spec(protocol="COMMAND", command="true")])
        failed = await changes.next()
        assert failed.healthy is False and "/nonexistent/sandbox" in (failed.message or "")
        # a task the executor does not know: the check is not performed, so not counted
        gone = CheckTarget(task_id=f"{cgroup_name}-gone", sandbox=str(sandbox), env=env)
        mon.watch(gone, [spec(protocol="COMMAND", command="true")])
        await asyncio.sleep(0.3)
        status = mon.status(gone.task_id)
        assert status is not None and status.healthy is None
        assert (status.message or "").startswith("check not performed")
        await mon.close()

    async def _ack_when_exited(port: ClientPort) -> None:
        for _ in range(200):
            tasks = {t.task_id: t for t in await port.list_tasks()}
            if task_id not in tasks or not tasks[task_id].running:
                await port.ack([task_id])
                return
            await asyncio.sleep(0.05)

    run(scenario())
