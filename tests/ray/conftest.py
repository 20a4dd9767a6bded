"""A real Ray cluster for the live tests: the ``ray`` kind's services deployed on a private
embedded engine, once per module (Ray takes 5-15 s to start, much longer on a busy machine).

Needs Ray (``pip install 'dshell[ray]'``; tests/run-all.sh installs it): skipped without it
locally, a failure in CI. The fixture deploys the kind's batches through the engine's service
API itself, as ``fw launch`` does, so the backend's tests do not depend on the ``fw`` verbs.
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
from dshell.core.services import wait_until
from dshell.frameworks import LaunchRequest, service_name
from dshell.model import Endpoint, Resources

from conftest import require_service, sandbox_pids
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
    mount: Mount  # how the CLI mounts it (source + token_file)
    state: Path
    base: Path  # HOST_RUNTIME/fw/NAME
    req: LaunchRequest
    endpoints: dict[str, list[Endpoint]]

    def teardown(self) -> None:
        """Remove the services (their whole process trees) and the kind's files."""
        for name in (workers_service(self.req.name), service_name(self.req.name)):
            with contextlib.suppress(Exception):
                self.host.service_call("rm", name)
        for name in (workers_service(self.req.name), service_name(self.req.name)):
            with contextlib.suppress(Exception):
                wait_until(self.host, name, "removed", 120)
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


def _deploy(host: Backend, req: LaunchRequest) -> dict[str, list[Endpoint]]:
    kind = RayKind()
    kind.check(host, req)
    endpoints: dict[str, list[Endpoint]] = {}
    for _ in range(4):
        batch = kind.services(host, req, endpoints)
        if not batch:
            return endpoints
        host.service_call("deploy", "-", services=batch, groups=[])
        for spec in batch:
            wait_until(host, spec.name, "deployed", 240)
            endpoints[spec.name] = list(host.service_call("endpoints", spec.name))
    raise AssertionError("the ray kind never finished")


@contextlib.contextmanager
def ray_cluster(name: str, workers: int) -> Iterator[RayCluster]:
    """An engine in private dirs with a Ray cluster on it; everything stopped afterwards."""
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
        req = LaunchRequest(
            name=name,
            kind="ray",
            host="/local",
            options={"workers": str(workers)},
            resources=Resources(cpus=2, mem=1024 + 384 * workers + 768 * (1 + workers)),
        )
        base = runtime / "fw" / name
        cluster = None
        try:
            endpoints = _deploy(host, req)
            source, opts = RayKind().mount_source(host, req, endpoints)
            mount = Mount(target="/ray", type="ray", source=source, options=opts)
            backend = RayBackend(
                Mount(target="/ray", type="ray", source=source, options={**opts, "poll": "0.2"})
            )
            cluster = RayCluster(host, backend, mount, state, base, req, endpoints)
            yield cluster
        finally:
            if cluster is not None:
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
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/environ", "rb") as fh:
                if marker in fh.read():
                    found.append(int(entry))
    return found


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
