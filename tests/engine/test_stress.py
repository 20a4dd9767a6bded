"""Load, malformed input and resource hygiene against the real engine."""

from __future__ import annotations

import glob
import hashlib
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import cast

import pytest
from dshell.errors import DshellError
from dshell.model import Resources, TaskState

from dshell_local import api, control
from dshell_local.client import EngineClient
from dshell_local.executor.cgroups import OWNER, SPARE

from .conftest import wait_until
from .helpers import spec

pytestmark = pytest.mark.engine


def test_16_clients_50_run_kill_each(engine: EngineClient) -> None:
    accepted: list[list[str]] = [[] for _ in range(16)]
    failures: list[BaseException] = []

    def client_loop(n: int) -> None:
        with control.client() as c:
            try:
                for _ in range(50):
                    task = c.submit(spec("sleep", "300", resources=Resources(cpus=0.001, mem=8)))
                    accepted[n].append(task[0].id)
                    c.kill(task[0].id, grace=0.2)
            except DshellError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures
    ids = [i for per in accepted for i in per]
    assert len(ids) == 800 and len(set(ids)) == 800
    wait_until(lambda: not engine.list_tasks(), timeout=120, what="every task to end")
    rows = engine.list_tasks(all=True)
    assert sorted(t.id for t in rows) == sorted(ids)
    assert {t.state for t in rows} == {TaskState.KILLED}
    events = list(engine.events(since=0))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    added = [e.task.id for e in events if e.type == "TASK_ADDED" and e.task]
    assert sorted(added) == sorted(ids)


def _raw(sock_path: str, data: bytes) -> bytes:
    """Send ``data`` and read until the engine closes.

    The write side stays open: aiohttp drops a connection whose client half-closes before
    the answer is written, so a SHUT_WR here would make answers a matter of luck. Requests
    that promise a body they never send are the exception (the engine would wait for it):
    for those EOF is the point, and no answer is expected.
    """
    truncated = b"Content-Length: 10000000" in data
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        try:
            s.sendall(data)
            if truncated:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the engine may close early on a request it refuses
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
        return out


def _garbage(rng: random.Random) -> bytes:
    paths = ["/v1/tasks", "/v1/tasks/x", "/v1/tasks/a.b/kill", "/v1/tasks/%00/files",
             "/v1/tasks/x/files/read?path=../../etc/passwd", "/v1/events?since=abc",
             "/v1/stats?interval=x", "/../../etc", "/v1/tasks/" + "a" * 5000, "/v2/x",
             "/v1/tasks?limit=-5&all=zz", "/v1/tasks/x/wait?timeout=nan"]  # fmt: skip
    kind = rng.randrange(6)
    if kind == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    if kind == 1:  # huge header
        return b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    if kind == 2:  # many headers
        heads = b"".join(b"X-%d: y\r\n" % i for i in range(2000))
        return b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\n" + heads + b"\r\n"
    bodies = [b"\xff\xfe", b"{", b"[]", b'{"command": 5}', b'{"command": []}',
              b'{"grace": "x"}', b'{"signal": 999}', b"null", b'{"instances": -1}']  # fmt: skip
    body = rng.choice(bodies)
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "BREW"])
    path = rng.choice(paths)
    length = len(body) if kind != 5 else 10_000_000
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n\r\n"
    ).encode() + body


def test_malformed_requests_get_4xx_and_the_engine_stays_up(engine: EngineClient) -> None:
    pid = engine.status().pid
    rng = random.Random(1234)
    sock_path = engine.socket_path
    statuses = []
    ok = []
    for _ in range(300):
        request = _garbage(rng)
        answer = _raw(sock_path, request)
        if answer:
            status = int(answer.split(b" ", 2)[1])
            (ok if status < 400 else statuses).append((status, request[:60]))
    assert statuses, "the engine answered nothing"
    assert all(400 <= s < 500 for s, _ in statuses), sorted({s for s, _ in statuses})
    # Only well-formed reads may succeed (e.g. GET /v1/tasks carrying 2,000 extra headers).
    assert all(r.startswith((b"GET /v1/tasks ", b"GET /v1/tasks?")) for _, r in ok), ok
    assert engine.ping() and engine.status().pid == pid
    assert engine.list_tasks(all=True) == []


def _fds(pid: int) -> int:
    """Open fds; the executor's journal counts once: while it compacts, the old generation's
    log is briefly open beside the new one."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            continue
    journal = [x for x in links if "/executor-tasks." in x and x.endswith(".log")]
    return len(links) - len(journal) + (1 if journal else 0)


def _zombies(parents: set[int]) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) in parents:
            count += 1
    return count


def _cgroup_dirs(runtime: Path) -> dict[str, list[str]]:
    """The sub-cgroups of the engine's parent group, per hierarchy."""
    name = "dshell-" + hashlib.sha1(str(runtime).encode()).hexdigest()[:10]
    return {
        parent: [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
        for parent in glob.glob(f"/sys/fs/cgroup/*/**/{name}", recursive=True)
    }


def _cgroups(runtime: Path) -> int:
    """Task groups (spares kept for reuse are counted by the test on their own; the
    executor's ``owner-`` mark is not a task's)."""
    return sum(
        len([d for d in dirs if not d.startswith((SPARE, OWNER))])
        for dirs in _cgroup_dirs(runtime).values()
    )


def test_fds_zombies_and_cgroups_back_to_baseline_after_1000_launches(
    engine: EngineClient, engine_dirs: Path
) -> None:
    status = engine.status()
    pids = {status.pid, status.executor.pid or 0}
    if status.isolation.kind.startswith("cgroup"):  # the cgroup count below sees task groups
        probe = engine.submit(spec("sleep", "300"))[0]
        wait_until(lambda: _cgroups(engine_dirs) >= 1, what="the probe's cgroups")
        engine.kill(probe.id, grace=0)
        engine.wait(probe.id, 30)
    for t in engine.submit(spec("true", instances=20)):
        engine.wait(t.id, 30)

    def snapshot() -> tuple[int, int, int, int]:
        return (
            _fds(status.pid),
            _fds(status.executor.pid or 0),
            _zombies(pids),
            _cgroups(engine_dirs),
        )

    def settled() -> tuple[int, int, int, int] | None:
        """A snapshot once the warm-up's groups are gone and nothing moves (the executor's
        cgroup remover opens files while it works)."""
        first = snapshot()
        time.sleep(0.2)
        return first if first == snapshot() and first[3] == 0 else None

    baseline = cast(tuple[int, int, int, int], wait_until(settled, what="a settled baseline"))
    tasks = engine.submit(spec("true", instances=1000, resources=Resources(cpus=0.001, mem=8)))
    for t in tasks:
        assert engine.wait(t.id, 120).state is TaskState.FINISHED
    wait_until(lambda: snapshot() == baseline, timeout=60, what=f"baseline {baseline}")
    assert baseline[2] == 0 and baseline[3] == 0
    for parent, dirs in _cgroup_dirs(engine_dirs).items():  # no group kept: the owner mark
        assert [d for d in dirs if not d.startswith(OWNER)] == [], (parent, dirs)
    assert len({t.id for t in tasks}) == 1000
    assert api.SOCKET_NAME in os.listdir(engine_dirs)
