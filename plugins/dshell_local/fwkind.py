"""``fw launch engine``: a dshell engine nested in a task of another one.

The child runs as the service ``fw-NAME`` of its host: one instance whose command is
:mod:`dshell_local.fwchild`, which writes the child's ``engine.toml`` from what the host gave
the task (its cpus, memory and disk minus :data:`OVERHEAD`, and its ports as the child
agent's port ranges) and supervises the child's daemon. The child's cgroups nest inside the
task's, so the host's memory limit bounds the child and everything it runs: without a memory
cgroup on the host, a launch is refused as UNSUPPORTED.

Where the child keeps its files (stable across restarts of the task, so a restarted child
recovers its state):

- state (database, sandboxes, logs, config): a per-instance persistent volume of the service
  (``state``, sized ``--disk``, default :data:`DEFAULT_DISK` MiB), which pins the task to its
  agent and is destroyed with the service. The child uses the volume's directory on the host
  (``HOST_STATE/volumes/fw-NAME#0-state``), not its path in the sandbox, which changes with
  every instance: the child's records of its own sandboxes stay valid after a restart.
- runtime (socket, executor): ``HOST_RUNTIME/fw/NAME`` (short: Unix socket paths are limited)

Its health check is HTTP over the child's socket (``GET /v1/ping``, ``unix_socket``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from dshell.errors import UnsupportedError, UsageError
from dshell.frameworks import FrameworkKind, LaunchRequest, service_name
from dshell.model import Endpoint, Resources

from . import api

if TYPE_CHECKING:
    from dshell.backend import Backend
    from dshell.specs.model import ServiceSpec

#: what the child's own processes (supervisor, engine, executor) take from the task's share:
#: measured, their anonymous memory is ~50 MiB (the memory cgroup's total_rss), plus room for
#: page cache and growth (docs/frameworks.md)
OVERHEAD = Resources(cpus=0.1, mem=80.0)
DEFAULT_DISK = 1024.0  # MiB of the state volume (the child agent's disk) without --disk
STATE_PATH = "state"  # the volume's container_path
DEFAULT_PORTS = 10  # host ports handed to the child's agent when --ports is not given
SOCKET_MAX = 100  # bytes: a Unix socket path must fit sun_path (108, with the NUL)
MIN_TASK_MEM = 16.0  # MiB the child must still be able to give one task


class EngineKind(FrameworkKind):
    """A nested dshell engine (mounted as a ``local`` backend over its socket)."""

    name = "engine"
    mount_type = "local"
    options: ClassVar[dict[str, str]] = {}

    # ---- where -----------------------------------------------------------------------------

    def _status(self, host: Backend) -> api.EngineStatus:
        client = getattr(host, "client", None)
        if host.name != "local" or client is None:
            raise UnsupportedError(host.name, "nested dshell engines", "fw launch engine")
        status: api.EngineStatus = client.status()
        return status

    def _dirs(self, host: Backend, name: str) -> tuple[Path, Path]:
        """(state, runtime) of the child: its state volume's directory, and its runtime dir."""
        from dshell.volumes import instance_volume_name

        st = self._status(host)
        volume = instance_volume_name(service_name(name), 0, STATE_PATH)
        return Path(st.state_dir) / "volumes" / volume, Path(st.socket).parent / "fw" / name

    # ---- FrameworkKind ---------------------------------------------------------------------

    def check(self, host: Backend, req: LaunchRequest) -> None:
        st = self._status(host)
        iso = st.isolation
        if not iso.kind.startswith("cgroup") or "memory" not in iso.controllers:
            raise UnsupportedError(
                host.name,
                "nested engines without a memory cgroup to hold their share "
                f"(this engine's isolation: {iso.detail or iso.kind})",
                "fw launch engine",
            )
        unknown = sorted(set(req.options) - set(self.options))
        if unknown:
            raise UsageError(f"fw launch engine: no option {unknown[0]!r} (it takes none)")
        res = req.resources
        if res.mem < OVERHEAD.mem + MIN_TASK_MEM:
            raise UsageError(
                f"--mem {res.mem:g}: a nested engine needs more than its own "
                f"{OVERHEAD.mem:g} MiB (at least {OVERHEAD.mem + MIN_TASK_MEM:g})"
            )
        if res.cpus <= OVERHEAD.cpus:
            raise UsageError(
                f"--cpus {res.cpus:g}: a nested engine needs more than {OVERHEAD.cpus:g}"
            )
        socket = self._dirs(host, req.name)[1] / api.SOCKET_NAME
        if len(str(socket).encode()) > SOCKET_MAX:
            raise UsageError(
                f"--name {req.name!r}: the child's socket path {socket} is too long for a Unix "
                "socket; use a shorter name or a shorter DSHELL_RUNTIME_DIR"
            )

    def services(
        self, host: Backend, req: LaunchRequest, endpoints: Mapping[str, list[Endpoint]]
    ) -> list[ServiceSpec]:
        from dshell.specs.model import (
            BackoffSpec,
            HealthCheckSpec,
            PortSpec,
            ResourceSpec,
            ServiceSpec,
            UpgradeStrategySpec,
            VolumeSpec,
        )

        name = service_name(req.name)
        if name in endpoints:
            return []
        state, runtime = self._dirs(host, req.name)
        res = req.resources
        disk = res.disk or DEFAULT_DISK
        command = [
            sys.executable,
            "-m",
            "dshell_local.fwchild",
            f"--name={req.name}",
            f"--state={state}",
            f"--runtime={runtime}",
            f"--cpus={res.cpus:g}",
            f"--mem={res.mem:g}",
            f"--disk={disk:g}",
        ]
        check = HealthCheckSpec(
            protocol="HTTP",
            unix_socket=str(runtime / api.SOCKET_NAME),
            path=f"{api.API_PREFIX}/ping",
            delay=0.2,
            interval=2.0,
            timeout=5.0,
            grace_period=60.0,
            max_consecutive_failures=5,
        )
        return [
            ServiceSpec(
                name=name,
                command=command,
                resources=ResourceSpec(cpus=res.cpus, mem=res.mem),
                volumes=[VolumeSpec(container_path=STATE_PATH, size=disk)],
                ports=[PortSpec() for _ in range(res.ports or DEFAULT_PORTS)],
                health_checks=[check],
                # one child at a time: a second daemon on the same state would be refused
                upgrade_strategy=UpgradeStrategySpec(
                    minimum_health_capacity=0.0, maximum_over_capacity=0.0
                ),
                backoff=BackoffSpec(seconds=1.0, factor=1.5, max_launch_delay=30.0),
                kill_grace_period=10.0,
            )
        ]

    def mount_source(
        self, host: Backend, req: LaunchRequest, endpoints: Mapping[str, list[Endpoint]]
    ) -> tuple[str, dict[str, str]]:
        runtime = self._dirs(host, req.name)[1]
        return "localhost", {"socket": str(runtime / api.SOCKET_NAME), "autostart": "no"}

    def remove(self, host: Backend, req: LaunchRequest) -> None:
        """The child's runtime dir goes with it (its state volume went with the service)."""
        st = self._status(host)
        runtime = self._dirs(host, req.name)[1]
        if runtime.parent.parent == Path(st.socket).parent:  # never more than HOST_RUNTIME/fw/NAME
            shutil.rmtree(runtime, ignore_errors=True)
