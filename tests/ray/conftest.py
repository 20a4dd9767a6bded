"""A real Ray cluster for the live tests: ``fw launch ray`` on a private embedded engine, once
per module (Ray takes 5-15 s to start, much longer on a busy machine). It is the one Ray
cluster the engine-hosted tests start (the issue allows two per test run; the other is the
Slurm-hosted one of test_fw_slurm.py), so the backend's tests and the ``fw`` verbs' checks share
it.

Needs Ray (``pip install 'dshell[ray]'``; tests/run-all.sh installs it): skipped without it
locally, a failure in CI.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dshell.backend import Backend, Mount
from dshell.frameworks import LaunchRequest, service_name
from dshell.model import Endpoint, Resources
from dshell.testing.fixtures import run_cli

from conftest import proc_pids, require_service, sandbox_pids
from dshell_ray.backend import RayBackend
from dshell_ray.fwkind import RayKind, workers_service

RAY_PROCESSES = (b"raylet", b"gcs_server", b"ray::", b"dshell_ray.node", b"dashboard")


def ray_installed() -> None:
    require_service(
        importlib.util.find_spec("ray") is not None,
        "Ray: pip install 'dshell[ray]' (tests/run-all.sh installs it)",
    )


def cluster_pids(state: Path, base: Path) -> list[int]:
    """Live processes of a cluster: launched by this engine (their environment names a
    sandbox under ``state``) or naming the framework's dir (``base``) on their command line."""
    return sandbox_pids(state, base)


@dataclass
class RayCluster:
    host: Backend  # the engine it runs on
    backend: RayBackend
    mount: Mount  # how the CLI mounts it by hand (source + token_file), resolved from the row
    state: Path
    base: Path  # HOST_RUNTIME/fw/NAME
    req: LaunchRequest
    endpoints: dict[str, list[Endpoint]]

    def teardown(self) -> None:
        """``fw rm``: unmount it, remove its services (their whole process trees) and files."""
        if run_cli(["fw", "rm", self.req.name]).status != 0:
            # the test fails elsewhere; still leave nothing behind
            for name in (workers_service(self.req.name), service_name(self.req.name)):
                with contextlib.suppress(Exception):
                    self.host.service_call("rm", name)
            RayKind().remove(self.host, self.req)


def private_ports(config: Path) -> None:
    """An engine.toml whose agent has ports of its own: engines of other tests on this
    machine all hand out 31000-32000, and Ray opens a dozen ports per node."""
    import random

    config.mkdir(parents=True, exist_ok=True)
    base = random.randrange(21000, 28000, 250)
    (config / "engine.toml").write_text(
        f'[[agents]]\nid = "local"\nports = [[{base}, {base + 249}]]\n'
    )


@contextlib.contextmanager
def ray_cluster(name: str, workers: int) -> Iterator[RayCluster]:
    """An engine in private dirs with a Ray cluster launched on it by ``fw launch ray`` (the
    one Ray cluster of the engine-hosted tests), removed by ``fw rm``; whatever a failed test
    leaves is killed. The environment stays set while the cluster lives, so the ``cli``
    fixture talks to this engine (``/local``) and sees the framework at ``/local/fw/NAME``."""
    from dshell.frameworks import resolve
    from dshell.namespace import MountTable
    from dshell.session import Session

    from dshell_local import control
    from dshell_local.backend import LocalBackend

    ray_installed()
    tmp = Path(tempfile.mkdtemp(prefix="dsray"))
    runtime = Path(tempfile.mkdtemp(prefix="dr", dir="/tmp"))  # short: Ray's socket paths
    state = tmp / "state"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSHELL_CONFIG_DIR", str(tmp / "config"))
        mp.setenv("DSHELL_STATE_DIR", str(state))
        mp.setenv("DSHELL_RUNTIME_DIR", str(runtime))
        mp.delenv("DSHELL_ENGINE_CONFIG", raising=False)
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        (tmp / "config").mkdir()
        private_ports(tmp / "config")
        control.start()
        host = LocalBackend(Mount(target="/local", type="local", source="localhost"))
        mem = 1024 + 384 * workers + 768 * (1 + workers)
        base = runtime / "fw" / name
        cluster = None
        try:
            res = run_cli([
                "fw", "launch", "ray", "--name", name, "--on", "/local", "--cpus", "2",
                "--mem", str(mem), "-o", f"workers={workers}", "--timeout", "400",
            ])  # fmt: skip
            assert res.status == 0, f"fw launch ray: {res.status} {res.stderr}"
            row = next(m for m in MountTable().load() if m.target == f"/local/fw/{name}")
            session = Session()
            try:
                mount = resolve(session, row)
            finally:
                session.close()
            backend = RayBackend(
                Mount(
                    target="/ray",
                    type="ray",
                    source=mount.source,
                    options={**mount.options, "poll": "0.2"},
                )
            )
            req = LaunchRequest(
                name=name, kind="ray", host="/local", options={"workers": str(workers)},
                resources=Resources(cpus=2, mem=mem),
            )  # fmt: skip
            endpoints = {
                svc: list(host.service_call("endpoints", svc))
                for svc in (service_name(name), workers_service(name))
            }
            cluster = RayCluster(host, backend, mount, state, base, req, endpoints)
            yield cluster
        finally:
            if cluster is not None and base.exists():
                cluster.teardown()
            with contextlib.suppress(Exception):
                control.stop(kill_tasks=True, timeout=60)
            _kill(cluster_pids(state, base) + engine_pids(runtime))
            host.close()
            shutil.rmtree(runtime, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)


def engine_pids(runtime: Path) -> list[int]:
    """The engine and executor of this test (their environment names its runtime dir)."""
    marker = f"DSHELL_RUNTIME_DIR={runtime}\0".encode()
    return proc_pids(lambda env, _cmd: marker in env)


def _kill(pids: list[int]) -> None:
    """Last resort for a failed test: nothing of the cluster may outlive the module."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
