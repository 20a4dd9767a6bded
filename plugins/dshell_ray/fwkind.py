"""``fw launch ray -o workers=N``: a Ray cluster run as services of the embedded engine.

Two services on the host, deployed in two batches:

- ``fw-NAME`` (one instance): the head, ``ray start --head --block`` (GCS, dashboard with the
  job API, raylet); healthy when ``GET /api/gcs_healthz`` on its dashboard answers;
- ``fw-NAME-workers`` (``workers`` instances, one task per Ray worker node, so ``ps`` and
  ``top`` on the host show them): ``ray start --address=127.0.0.1:GCS --block``, deployed once
  the head is healthy; healthy when its dashboard agent's ``/api/local_raylet_healthz`` answers.
  ``-o workers=0`` runs a head alone.

Network: every node's address is 127.0.0.1 (:mod:`dshell_ray.node` keeps Ray from replacing
it with the machine's outbound address), so Ray binds every server to loopback, and every port
it opens is one the engine allocated to the task (``PORT_<NAME>``): GCS, dashboard, dashboard
agent HTTP and gRPC, runtime-env agent, metrics export, node and object managers, client
server, the dashboard's and the autoscaler's metrics, and the worker processes' ports
(``--worker-port-list``, ``worker_ports`` per node). On top of that the cluster runs with
token authentication (``RAY_AUTH_MODE=token``): a random token in a 0600 file of the
framework's runtime dir, which the mount reads (``token_file``) and nothing prints.

Resources (the rule ``docs/ray.md`` documents): ``--cpus`` is split evenly between the
``1 + workers`` nodes (each node's logical CPUs for Ray: that share rounded, at least 1; the
cgroup bounds the real use). ``--mem`` first pays each node's own processes (head
:data:`HEAD_OVERHEAD` MiB, worker :data:`WORKER_OVERHEAD` MiB); the rest is split evenly, and
of each node's part :data:`OBJECT_STORE_FRACTION` goes to ``--object-store-memory`` (at least
Ray's minimum), the remainder to ``--memory`` (what Ray tasks and actors may reserve).

Files: ``HOST_RUNTIME/fw/NAME`` holds the token and each node's Ray temp dir (Ray's Unix
socket paths must stay short); ``fw rm`` removes it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from dshell.errors import PluginError, UnsupportedError, UsageError
from dshell.frameworks import FrameworkKind, LaunchRequest, service_name
from dshell.model import Endpoint

if TYPE_CHECKING:
    from dshell.backend import Backend
    from dshell.specs.model import HealthCheckSpec, ServiceSpec

HEAD_OVERHEAD = 1024.0  # MiB: GCS, raylet, dashboard and its modules, agents (measured ~0.9 GiB)
WORKER_OVERHEAD = 384.0  # MiB: raylet, dashboard agent, runtime-env agent (measured ~0.4 GiB)
MIN_SHARE = 256.0  # MiB of each node's share beyond its own processes
OBJECT_STORE_FRACTION = 0.3
MIN_OBJECT_STORE = 80.0  # MiB: Ray refuses less than 75 MiB
DEFAULT_WORKERS = 1
DEFAULT_WORKER_PORTS = 16
MAX_WORKERS = 64
TOKEN = "token"
GCS_FILE = "gcs"  # the head's GCS address, written by the head at each start
# What every node of a dshell-hosted cluster runs with, wherever it runs. A raylet that loses
# the GCS waits this long before it gives up (Ray's default: 60 s). These clusters have no
# external GCS store, so a restarted head is a new GCS on new ports that no raylet can
# reconnect to: the wait only delays the worker's restart against the new head. 15 s still
# rides out a GCS that is slow to answer.
NODE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_gcs_rpc_server_reconnect_timeout_s": "15",
}
#: Ray's longest Unix socket: TEMP/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store
SOCKET_SUFFIX = 72
SOCKET_MAX = 107
MIB = 1024 * 1024

HEAD_PORTS = (
    "gcs",
    "dashboard",
    "agent_http",
    "agent_grpc",
    "runtime_env",
    "metrics",
    "node_manager",
    "object_manager",
    "client",
    "dash_metrics",
    "autoscaler_metrics",
)
WORKER_PORTS = (
    "agent_http",
    "agent_grpc",
    "runtime_env",
    "metrics",
    "node_manager",
    "object_manager",
)


def workers_service(name: str) -> str:
    return f"{service_name(name)}-workers"


def _int_option(req: LaunchRequest, key: str, default: int, low: int, high: int) -> int:
    text = req.options.get(key)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise UsageError(f"fw launch ray -o {key}={text!r}: expected a whole number {low}-{high}")
    return int(text)


class Plan:
    """How a request's resources are split between the head and the workers."""

    def __init__(self, req: LaunchRequest) -> None:
        self.workers = _int_option(req, "workers", DEFAULT_WORKERS, 0, MAX_WORKERS)
        self.worker_ports = _int_option(req, "worker_ports", DEFAULT_WORKER_PORTS, 4, 256)
        nodes = 1 + self.workers
        res = req.resources
        if res.cpus <= 0:
            raise UsageError("fw launch ray: --cpus is required (split between the Ray nodes)")
        if res.ports:
            raise UsageError(
                "fw launch ray: --ports does not apply (each Ray node gets the ports it opens; "
                "-o worker_ports=N sets how many its worker processes get)"
            )
        need = HEAD_OVERHEAD + self.workers * WORKER_OVERHEAD + nodes * MIN_SHARE
        if res.mem < need:
            raise UsageError(
                f"fw launch ray: --mem {res.mem:g} MiB is too little for a head and "
                f"{self.workers} worker(s): at least {need:g} MiB ({HEAD_OVERHEAD:g} for the "
                f"head's processes, {WORKER_OVERHEAD:g} per worker, {MIN_SHARE:g} per node "
                "for work)"
            )
        self.cpus = res.cpus / nodes
        self.disk = res.disk / nodes
        self.share = (res.mem - HEAD_OVERHEAD - self.workers * WORKER_OVERHEAD) / nodes
        self.object_store = max(MIN_OBJECT_STORE, self.share * OBJECT_STORE_FRACTION)
        self.memory = self.share - self.object_store

    def ray_resources(self) -> list[str]:
        """The ``ray start`` resource options of one node (bytes for memory)."""
        return [
            f"--num-cpus={max(1, math.floor(self.cpus + 0.5))}",
            f"--memory={int(self.memory * MIB)}",
            f"--object-store-memory={int(self.object_store * MIB)}",
        ]


class RayKind(FrameworkKind):
    """A Ray cluster: a head and ``workers`` worker nodes, each a task of the host."""

    name = "ray"
    mount_type = "ray"
    requires = "dshell[ray]"
    options: ClassVar[dict[str, str]] = {
        "workers": f"Ray worker nodes besides the head (default {DEFAULT_WORKERS})",
        "worker_ports": "ports per node for Ray's worker processes "
        f"(default {DEFAULT_WORKER_PORTS}: about the processes a node runs at once)",
    }

    # ---- where -----------------------------------------------------------------------------

    def _base(self, host: Backend, name: str) -> Path:
        """``HOST_RUNTIME/fw/NAME`` of the embedded engine hosting the cluster."""
        client = getattr(host, "client", None)
        if host.name != "local" or client is None:
            raise UnsupportedError(
                host.name,
                "Ray clusters as services (the embedded engine runs them; hosts without "
                "services run them as jobs: dshell_ray.slurmhost)",
                "fw launch ray",
            )
        return Path(client.status().socket).parent / "fw" / name

    # ---- FrameworkKind ---------------------------------------------------------------------

    def check(self, host: Backend, req: LaunchRequest) -> None:
        unknown = sorted(set(req.options) - set(self.options))
        if unknown:
            raise UsageError(
                f"fw launch ray: no option {unknown[0]!r} (options: {', '.join(self.options)})"
            )
        Plan(req)
        base = self._base(host, req.name)
        longest = len(str(base).encode()) + len("/n") + 6 + SOCKET_SUFFIX
        if longest > SOCKET_MAX:
            raise UsageError(
                f"--name {req.name!r}: Ray's socket paths under {base} would be too long for "
                "Unix sockets; use a shorter name or a shorter DSHELL_RUNTIME_DIR"
            )
        if importlib.util.find_spec("ray") is None:
            raise PluginError(
                "fw launch ray: Ray is not installed here",
                hint=f"pip install '{self.requires}'",
            )

    def services(
        self, host: Backend, req: LaunchRequest, endpoints: Mapping[str, list[Endpoint]]
    ) -> list[ServiceSpec]:
        plan = Plan(req)
        head, workers = service_name(req.name), workers_service(req.name)
        base = self._base(host, req.name)
        if head not in endpoints:
            token = self._token(base)
            return [self._head(req, plan, base, token)]
        if workers in endpoints or plan.workers == 0:
            return []
        _port(endpoints, head, "gcs")  # the head is up: its address is in GCS_FILE
        return [self._workers(req, plan, base, base / TOKEN)]

    def mount_source(
        self, host: Backend, req: LaunchRequest, endpoints: Mapping[str, list[Endpoint]]
    ) -> tuple[str, dict[str, str]]:
        port = _port(endpoints, service_name(req.name), "dashboard")
        token = self._base(host, req.name) / TOKEN
        return f"http://127.0.0.1:{port}", {"token_file": str(token)}

    def remove(self, host: Backend, req: LaunchRequest) -> None:
        """The token and the nodes' Ray temp dirs go with the framework."""
        base = self._base(host, req.name)
        if base.parent.name == "fw" and base.name == req.name:  # never anything else
            shutil.rmtree(base, ignore_errors=True)

    # ---- the services ------------------------------------------------------------------------

    def _token(self, base: Path) -> Path:
        """The cluster's token file (0600 in a 0700 dir), created once per framework."""
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        path = base / TOKEN
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path

    def _head(self, req: LaunchRequest, plan: Plan, base: Path, token: Path) -> ServiceSpec:
        ports = [*HEAD_PORTS, *(f"w{i}" for i in range(plan.worker_ports))]
        options = [
            "--head",
            "--port=$PORT_GCS",
            "--dashboard-host=127.0.0.1",
            "--dashboard-port=$PORT_DASHBOARD",
            "--ray-client-server-port=$PORT_CLIENT",
            "--include-dashboard=true",
        ]
        gcs = shlex.quote(str(base / GCS_FILE))
        prelude = [
            'export DASHBOARD_METRIC_PORT="$PORT_DASH_METRICS";',
            'export AUTOSCALER_METRIC_PORT="$PORT_AUTOSCALER_METRICS";',
            # where workers find the head, even after the head was relaunched on new ports
            f'printf "127.0.0.1:%s" "$PORT_GCS" > {gcs}.new && mv -f {gcs}.new {gcs} &&',
        ]
        check = _check("dashboard", "/api/gcs_healthz")
        node = (service_name(req.name), 1, HEAD_OVERHEAD)
        return _spec(node, plan, base, token, ports, options, prelude, check)

    def _workers(self, req: LaunchRequest, plan: Plan, base: Path, token: Path) -> ServiceSpec:
        ports = [*WORKER_PORTS, *(f"w{i}" for i in range(plan.worker_ports))]
        check = _check("agent_http", "/api/local_raylet_healthz")
        prelude = [f"gcs=$(cat {shlex.quote(str(base / GCS_FILE))}) &&"]
        options = ['--address="$gcs"']
        node = (workers_service(req.name), plan.workers, WORKER_OVERHEAD)
        return _spec(node, plan, base, token, ports, options, prelude, check)

    #: on a host without services (Slurm): a head job and a job array of workers, imported
    #: only then (:mod:`dshell_ray.slurmhost`, docs/ray.md "On Slurm")
    job_form = "dshell_ray.slurmhost:RayOnSlurm"


def _check(port_name: str, path: str) -> HealthCheckSpec:
    from dshell.specs.model import HealthCheckSpec

    return HealthCheckSpec(
        protocol="HTTP",
        port_name=port_name,
        path=path,  # whitelisted by Ray's token authentication
        delay=2.0,
        interval=5.0,
        timeout=10.0,
        grace_period=180.0,  # Ray takes 5-15 s to start, much more on a busy machine
        max_consecutive_failures=6,  # a busy head can be slow to answer for a while
    )


def _port(endpoints: Mapping[str, list[Endpoint]], service: str, port_name: str) -> int:
    for ep in endpoints.get(service, []):
        if ep.port_name == port_name:
            return ep.port
    raise UsageError(f"Ray framework: service {service} has no {port_name!r} port yet")


def _spec(
    node: tuple[str, int, float],
    plan: Plan,
    base: Path,
    token: Path,
    ports: list[str],
    options: list[str],
    prelude: list[str],
    check: HealthCheckSpec,
) -> ServiceSpec:
    """One node kind as a service: a shell line that makes the node's temp dir, then execs
    :mod:`dshell_ray.node` (the ``$PORT_*`` variables are the engine's, expanded by sh)."""
    from dshell.specs.model import (
        BackoffSpec,
        PortSpec,
        ResourceSpec,
        ServiceSpec,
        UpgradeStrategySpec,
    )

    common = [
        "--block",
        "--dashboard-agent-listen-port=$PORT_AGENT_HTTP",
        "--dashboard-agent-grpc-port=$PORT_AGENT_GRPC",
        "--runtime-env-agent-port=$PORT_RUNTIME_ENV",
        "--metrics-export-port=$PORT_METRICS",
        "--node-manager-port=$PORT_NODE_MANAGER",
        "--object-manager-port=$PORT_OBJECT_MANAGER",
        "--worker-port-list=" + ",".join(f"$PORT_W{i}" for i in range(plan.worker_ports)),
        *plan.ray_resources(),
        "--disable-usage-stats",
        "--log-style=record",
        "--log-color=false",
    ]
    argv = [shlex.quote(sys.executable), "-m", "dshell_ray.node", "127.0.0.1"]
    line = " ".join(
        [
            *prelude,
            f"tmp=$(mktemp -d {shlex.quote(str(base))}/nXXXXXX) &&",
            "exec",
            *argv,
            *options,
            *common,
            '--temp-dir="$tmp"',
        ]
    )
    name, instances, overhead = node
    return ServiceSpec(  # noqa: S604 - a model field: the engine runs it with sh -c
        name=name,
        command=[line],
        shell=True,
        instances=instances,
        resources=ResourceSpec(cpus=plan.cpus, mem=overhead + plan.share, disk=plan.disk),
        ports=[PortSpec(name=p) for p in ports],
        env={
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every address stays loopback
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            **NODE_ENV,
        },
        health_checks=[check],
        upgrade_strategy=UpgradeStrategySpec(
            minimum_health_capacity=0.0, maximum_over_capacity=0.0
        ),
        backoff=BackoffSpec(seconds=2.0, factor=1.5, max_launch_delay=60.0),
        kill_grace_period=15.0,  # `ray start --block` stops its processes on SIGTERM
    )
