"""Fixtures for the executor tests: a real executor process per test, in its own short runtime
dir, with a unique cgroup name; teardown kills whatever the test left and removes the cgroups.

Tests that need root and cgroup v1 call ``need_cgroups()``: with ``CI=true`` they fail when
cgroups are unusable, elsewhere they are skipped.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import require_service
from dshell_local.executor import procfs
from dshell_local.executor.cgdiscover import discover
from dshell_local.executor.sync_client import SyncExecutorClient

_counter = itertools.count()
PATH = "/usr/local/bin:/usr/bin:/bin"


def need_cgroups() -> None:
    """Fail (CI) or skip (elsewhere) unless we are root with usable cgroup v1/v2."""
    why = None
    if os.geteuid() != 0:
        why = "not root"
    else:
        probe = f"dxprobe-{os.getpid()}"
        found = discover(probe)
        for h in found.hierarchies:
            os.rmdir(h.parent)
        if found.kind == "rlimit":
            why = found.detail
    require_service(why is None, f"cgroups (v1 memory/cpu/pids, as root): {why}")


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy (bounded); returns that value."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class Executor:
    """One executor process under test, plus helpers to spawn tasks in sandboxes."""

    def __init__(self, rdir: str, cgroup_name: str, isolation: str, idle_exit: float) -> None:
        self.dir = rdir
        self.cgroup_name = cgroup_name
        self.isolation = isolation
        self.idle_exit = idle_exit
        self.prefix = cgroup_name  # every task id starts with it (teardown finds strays by it)
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: SyncExecutorClient | None = None

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "dshell_local.executor", "--runtime-dir", self.dir,
            "--cgroup-name", self.cgroup_name, "--log", os.path.join(self.dir, "executor.log"),
            "--idle-exit", str(self.idle_exit), "--isolation", self.isolation,
        ]  # fmt: skip

    def start(self) -> SyncExecutorClient:
        """Start the executor, wait until it is ready (its ready fd), connect and say hello."""
        r, w = os.pipe()
        with open(os.path.join(self.dir, "stderr"), "ab") as err:
            self.proc = subprocess.Popen(
                [*self.argv(), "--ready-fd", str(w)], pass_fds=(w,), stdin=subprocess.DEVNULL,
                stdout=err, stderr=err,
            )  # fmt: skip
        os.close(w)
        ready, _, _ = select.select([r], [], [], 30)
        data = os.read(r, 64) if ready else b""
        os.close(r)
        if not data.startswith(b"ready"):
            with open(os.path.join(self.dir, "stderr"), "rb") as f:
                raise AssertionError(f"executor did not start: {f.read().decode()[-2000:]}")
        self.client = SyncExecutorClient.connect(self.dir)
        return self.client

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        """Crash the executor (its tasks live on, orphaned)."""
        assert self.proc is not None
        if self.client:
            self.client.close()
            self.client = None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM the executor and wait for it; returns its exit status."""
        assert self.proc is not None
        if self.client:
            self.client.close()
            self.client = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def task_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def sandbox(self, name: str) -> str:
        path = os.path.join(self.dir, "sb", name)
        os.makedirs(path, exist_ok=True)
        return path

    def spec(self, name: str, argv: list[str], **fields: Any) -> dict[str, Any]:
        """A spawn request for task ``name`` in its own sandbox."""
        tid = self.task_id(name)
        sb = self.sandbox(name)
        spec: dict[str, Any] = {
            "task_id": tid, "argv": argv, "env": {"PATH": PATH, "DSHELL_TASK_ID": tid},
            "cwd": sb, "stdout": os.path.join(sb, "stdout"), "stderr": os.path.join(sb, "stderr"),
        }  # fmt: skip
        spec.update(fields)
        return spec

    def spawn(self, name: str, argv: list[str], **fields: Any) -> dict[str, Any]:
        assert self.client is not None
        return self.client.call("spawn", **self.spec(name, argv, **fields))

    def read(self, name: str, stream: str = "stdout") -> str:
        with open(os.path.join(self.dir, "sb", name, stream), encoding="utf-8") as f:
            return f.read()

    def cleanup(self) -> None:
        """Kill what the test left (also after an executor crash), stop it, remove cgroups."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                client = self.client or SyncExecutorClient.connect(self.dir)
                tasks = client.call("list")["tasks"]
                for t in tasks:
                    if t["running"]:
                        client.call("sweep", task_id=t["task_id"])
                client.call("ack", task_ids=[t["task_id"] for t in tasks])
                self.client = client
            except (OSError, ConnectionError, TimeoutError):
                pass
            self.stop()
        kill_strays(self.prefix)
        remove_cgroups(self.cgroup_name)


def kill_strays(prefix: str) -> None:
    """SIGKILL every process whose DSHELL_TASK_ID starts with ``prefix`` (until none is left)."""

    def strays() -> list[int]:
        found = []
        needle = f"DSHELL_TASK_ID={prefix}-".encode()
        for pid in procfs.all_pids():
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if any(v.startswith(needle) for v in f.read().split(b"\0")):
                        found.append(pid)
            except OSError:
                continue
        return found

    def gone() -> bool:
        pids = strays()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids

    wait_until(gone, 10, "stray task processes to die")


def remove_cgroups(cgroup_name: str) -> None:
    """rmdir the test's parent cgroups and any task cgroups left in them."""
    if os.geteuid() != 0:
        return
    for h in discover(cgroup_name).hierarchies:
        for entry in os.scandir(h.parent):
            if entry.is_dir():
                wait_until(lambda p=entry.path: _rmdir_ok(p), 10, f"rmdir {entry.path}")
        os.rmdir(h.parent)


def _rmdir_ok(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
            for pid in f.read().split():
                os.kill(int(pid), signal.SIGKILL)
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@pytest.fixture
def make_executor() -> Iterator[Callable[..., Executor]]:
    """Factory: ``make_executor(isolation="auto", idle_exit=0)`` → a started Executor."""
    made: list[tuple[Executor, str]] = []

    def make(isolation: str = "auto", idle_exit: float = 0.0, start: bool = True) -> Executor:
        rdir = tempfile.mkdtemp(prefix="dx", dir="/tmp")
        name = f"dxt{os.getpid()}-{next(_counter)}"
        ex = Executor(rdir, name, isolation, idle_exit)
        made.append((ex, rdir))
        if start:
            ex.start()
        return ex

    yield make
    for ex, rdir in made:
        ex.cleanup()
        shutil.rmtree(rdir, ignore_errors=True)


@pytest.fixture
def executor(make_executor: Callable[..., Executor]) -> Executor:
    """A started executor with cgroups (the default isolation on these machines)."""
    need_cgroups()
    return make_executor()


@pytest.fixture(params=["auto", "rlimit"])
def any_executor(
    request: pytest.FixtureRequest, make_executor: Callable[..., Executor]
) -> Executor:
    """The same test with cgroups and with the rlimit fallback."""
    if request.param == "auto":
        need_cgroups()
    return make_executor(isolation=request.param)
