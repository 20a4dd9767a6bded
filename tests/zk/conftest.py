"""A real 3-member ZooKeeper ensemble for the service-discovery tests, started once per run.

``zk``: reuses the ensemble ``tests/run-all.sh`` started (``DSHELL_TEST_ZK`` = its hosts,
``DSHELL_TEST_ZK_DIR`` = ``$SVC/zk-ens``, whose ``<n>/zk.pid`` the kill test uses) when it
answers; otherwise starts a private one with ``tests/services/services.sh`` and stops it at the
end of the session. Without ZooKeeper the tests are skipped with the reason — and FAIL under
``CI=true`` (``require_service``).

``zk_root``: a fresh base znode per test (``/dshell-test-<hex>``), deleted afterwards, and
``admin``: a plain kazoo client for looking at what the code under test wrote.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import require_service, run_services

ENSEMBLE = "127.0.0.1:2281,127.0.0.1:2282,127.0.0.1:2283"  # services.sh zk_ensemble_start
TEST_USER, TEST_PASSWORD = "dshell-test", "s3cret-Pa55"  # the digest identity of the ACL tests


services = run_services


def srvr(port: int) -> str:
    """The ``srvr`` four-letter answer of the server on ``port`` ("" when it does not answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"srvr")
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def serving(port: int) -> bool:
    return any(
        line.startswith("Mode: ") and line.split()[1] in ("leader", "follower", "standalone")
        for line in srvr(port).splitlines()
    )


def wait_until(check: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


@dataclass
class Ensemble:
    hosts: str
    dir: Path | None  # holds <n>/zoo.cfg and <n>/zk.pid (None: reused without it)
    svc: str

    def url(self, path: str) -> str:
        return f"zk://{self.hosts}{path}"

    def member_port(self, n: int) -> int:
        assert self.dir is not None
        for line in (self.dir / str(n) / "zoo.cfg").read_text().splitlines():
            if line.startswith("clientPort="):
                return int(line.split("=", 1)[1])
        raise AssertionError(f"no clientPort in member {n}'s zoo.cfg")

    def leader(self) -> int:
        """The member number of the current leader."""
        for n in (1, 2, 3):
            if "Mode: leader" in srvr(self.member_port(n)):
                return n
        raise AssertionError("the ensemble has no leader")

    def kill(self, n: int) -> None:
        """kill -9 member ``n`` and wait until it is gone."""
        assert self.dir is not None
        pid = int((self.dir / str(n) / "zk.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), 30, f"zk member {n} (pid {pid}) to die")

    def restart(self, n: int) -> None:
        """Start member ``n`` again (services.sh ``_zk_launch``) and wait until it serves."""
        assert self.dir is not None
        port = self.member_port(n)
        done = services(
            self.svc,
            f'_zk_launch "{self.dir / str(n)}"; wait_until 60 "zk member {n}" zk_serving {port}',
        )
        assert done.returncode == 0, f"member {n} did not come back: {done.stderr[-1500:]}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _answers(hosts: str) -> bool:
    return all(serving(int(h.rsplit(":", 1)[1])) for h in hosts.split(","))


@pytest.fixture(scope="session")
def zk() -> Iterator[Ensemble]:
    """A running 3-member ensemble (see the module docstring)."""
    require_service(importlib.util.find_spec("kazoo") is not None, "kazoo (the test extra)")
    hosts = os.environ.get("DSHELL_TEST_ZK")
    if hosts:
        require_service(_answers(hosts), f"ZooKeeper ensemble DSHELL_TEST_ZK={hosts} answers")
        zk_dir = os.environ.get("DSHELL_TEST_ZK_DIR")
        where = Path(zk_dir) if zk_dir else None
        yield Ensemble(hosts, where, str(where.parent) if where else "")
        return
    require_service(
        bool(shutil.which("java")) and Path("/usr/share/java/zookeeper.jar").exists(),
        "ZooKeeper: run tests/run-all.sh, or install the Debian 'zookeeper' package",
    )
    require_service(
        not serving(2281),
        "ZooKeeper: an ensemble already listens on 127.0.0.1:2281; export DSHELL_TEST_ZK and "
        "DSHELL_TEST_ZK_DIR to use it",
    )
    svc = tempfile.mkdtemp(prefix="dszk", dir="/tmp")
    started = services(svc, "zk_ensemble_start")
    try:
        require_service(started.returncode == 0, f"ZooKeeper did not start: {started.stderr}")
        yield Ensemble(ENSEMBLE, Path(svc) / "zk-ens", svc)
    finally:
        services(svc, "zk_ensemble_stop", timeout=60)
        shutil.rmtree(svc, ignore_errors=True)


@pytest.fixture
def admin(zk: Ensemble) -> Iterator[Any]:
    """A kazoo client of the tests themselves, authenticated as the ACL tests' user."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk.hosts, auth_data=[("digest", f"{TEST_USER}:{TEST_PASSWORD}")])
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_root(admin: Any) -> Iterator[str]:
    """A base path of this test's own (not created: the code under test makes it)."""
    root = f"/dshell-test-{uuid.uuid4().hex[:12]}"
    yield root
    from kazoo.exceptions import KazooException

    with contextlib.suppress(KazooException):  # never created; the name is unique anyway
        admin.delete(root, recursive=True)
