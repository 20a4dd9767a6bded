"""``python -m dshell_ray.jobnode head|worker --dir DIR …``: one Ray node inside a job of a
host without services (a Slurm batch job, ``fw launch ray --on /hpc``).

Runs on the compute node, so it may import ``ray`` (through :mod:`dshell_ray.node`); the CLI
never imports it. What it does, in order:

1. **Address**: the node's address as the cluster knows it — ``NodeAddr`` of
   ``scontrol show node $SLURMD_NODENAME`` (127.0.0.1 on the test cluster, whose nodes share
   loopback; the node's private address on a real one), else the address ``hostname``
   resolves to; ``--address IP`` overrides. An unspecified address (0.0.0.0, ::) is refused:
   Ray's job API runs code, so nothing may listen on every interface.
2. **Files**: ``DIR`` (relative to the job's working directory, which every job of the
   framework shares) holds the cluster's token (0600, created once by the head) and the
   head's GCS address (``gcs``, rewritten at each start of the head). Ray's own temp dir
   (logs, Unix sockets) is node-local: ``/tmp/drayXXXXXXXX``, removed when the node stops.
3. **Ports**: every port Ray opens is chosen here, free on the node's address at start
   (bound with port 0, then released), and pinned on ``ray start``'s command line; the
   endpoints the shell needs are announced on stdout as ``DSHELL_ENDPOINT NAME HOST:PORT``
   (head: ``gcs``, ``dashboard``, ``client``; worker: ``agent_http``). Ray's own output goes
   to stderr.
4. **Resources**: ``--num-cpus`` is the job's ``SLURM_CPUS_ON_NODE``; of its memory
   (``SLURM_MEM_PER_NODE``, else ``SLURM_MEM_PER_CPU`` times cpus, else ``--mem``) the node's own
   processes get ``--overhead`` MiB and the rest is split as on the embedded engine
   (:class:`dshell_ray.fwkind.Plan`): a share for the object store, the remainder
   ``--memory``.
5. **Supervision**: ``ray start --block`` runs as a child. When it ends by itself (a Ray
   process died, the head went away), whatever is left of it is killed and it starts again
   on new ports (announced again; a worker re-reads the head's address), after a backoff;
   after :data:`MAX_FAILURES` failures within :data:`WINDOW` seconds the job ends with its
   status. On SIGTERM (``scancel``, ``fw rm``) Ray is stopped, then every process it left
   (found by a marker in their environment, since Ray's daemons may leave the job's process
   tree) is killed, and the temp dir removed.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from dshell.frameworks import announce_line

from .fwkind import (
    GCS_FILE,
    HEAD_PORTS,
    MIB,
    MIN_OBJECT_STORE,
    NODE_ENV,
    OBJECT_STORE_FRACTION,
    TOKEN,
    WORKER_PORTS,
)

MAX_FAILURES = 5
WINDOW = 600.0  # seconds
BACKOFF = (2.0, 1.5, 30.0)  # first delay, factor, cap
STOP_GRACE = 3.0  # seconds Ray gets to stop on SIGTERM (Slurm's KillWait is the bound)
WAIT_HEAD = 300.0  # seconds a worker waits for the head's token and address
MARKER = "DSHELL_RAY_NODE"


class Stop:
    """Whether SIGTERM/SIGINT/SIGHUP arrived (and when), and the child to pass it on to."""

    def __init__(self) -> None:
        self.requested = False
        self.at = 0.0
        self.child: subprocess.Popen[bytes] | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if not self.requested:
            self.requested, self.at = True, time.monotonic()
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signal.SIGTERM)


def say(text: str) -> None:
    print(f"jobnode: {text}", file=sys.stderr, flush=True)


def fail(text: str, code: int = 2) -> NoReturn:
    say(text)
    raise SystemExit(code)


# ---- where ---------------------------------------------------------------------------------


def _node_addr(node: str) -> str | None:
    """``NodeAddr`` of ``scontrol show node -o NODE`` (None if unavailable)."""
    try:
        done = subprocess.run(
            ["scontrol", "show", "node", "-o", node],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in done.stdout.split():
        if word.startswith("NodeAddr="):
            return word.partition("=")[2] or None
    return None


def node_address(given: str | None, environ: dict[str, str]) -> str:
    """The IP Ray binds to and announces (never an unspecified address)."""
    name = given
    if not name and environ.get("SLURMD_NODENAME"):
        name = _node_addr(environ["SLURMD_NODENAME"])
    if not name:
        name = socket.gethostname()
    try:
        ip = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError):
        fail(f"cannot resolve this node's address {name!r} (give --address IP)")
    addr = ipaddress.ip_address(str(ip).split("%")[0])
    if addr.is_unspecified:
        fail(f"node address {name!r} is {addr}: Ray would listen on every interface")
    return str(addr)


def free_ports(addr: str, names: list[str]) -> dict[str, int]:
    """A free TCP port on ``addr`` per name (all held at once, so they differ)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    held: list[socket.socket] = []
    try:
        for _ in names:
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((addr, 0))
        return {name: s.getsockname()[1] for name, s in zip(names, held, strict=True)}
    finally:
        for sock in held:
            sock.close()


def ensure_token(base: Path) -> Path:
    """The cluster's token file (0600 in a 0700 dir), created once."""
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    path = base / TOKEN
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_text(path: Path) -> str:
    """The file's stripped text; "" while it does not exist."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def wait_file(path: Path, stop: Stop, timeout: float = WAIT_HEAD) -> str:
    """The file's text once it has some (the head writes it); exit 1 after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not stop.requested:
        text = read_text(path)
        if text:
            return text
        if time.monotonic() >= deadline:
            fail(f"{path} did not appear within {timeout:g}s (is the head running?)", 1)
        time.sleep(0.5)
    raise SystemExit(0)


# ---- resources -----------------------------------------------------------------------------


def node_resources(args: argparse.Namespace, environ: dict[str, str]) -> list[str]:
    """``ray start`` resource options from the job's allocation."""
    cpus = int(environ.get("SLURM_CPUS_ON_NODE") or args.cpus or 1)
    if environ.get("SLURM_MEM_PER_NODE"):
        mem = float(environ["SLURM_MEM_PER_NODE"])
    elif environ.get("SLURM_MEM_PER_CPU"):
        mem = float(environ["SLURM_MEM_PER_CPU"]) * cpus
    else:
        mem = float(args.mem or 0)
    share = mem - args.overhead
    store = max(MIN_OBJECT_STORE, share * OBJECT_STORE_FRACTION)
    if share - store <= 0:
        fail(f"{mem:g} MiB is too little: {args.overhead:g} MiB go to Ray's own processes")
    return [
        f"--num-cpus={max(1, cpus)}",
        f"--memory={int((share - store) * MIB)}",
        f"--object-store-memory={int(store * MIB)}",
    ]


# ---- one start of Ray ----------------------------------------------------------------------


def ray_argv(
    role: str, addr: str, ports: dict[str, int], gcs: str, resources: list[str], tmp: str
) -> list[str]:
    workers = sorted((k for k in ports if k.startswith("w")), key=lambda k: int(k[1:]))
    own = (
        [
            "--head",
            f"--port={ports['gcs']}",
            f"--dashboard-host={addr}",
            f"--dashboard-port={ports['dashboard']}",
            f"--ray-client-server-port={ports['client']}",
            "--include-dashboard=true",
        ]
        if role == "head"
        else [f"--address={gcs}"]
    )
    return [
        sys.executable,
        "-m",
        "dshell_ray.node",
        addr,
        *own,
        "--block",
        f"--dashboard-agent-listen-port={ports['agent_http']}",
        f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
        f"--runtime-env-agent-port={ports['runtime_env']}",
        f"--metrics-export-port={ports['metrics']}",
        f"--node-manager-port={ports['node_manager']}",
        f"--object-manager-port={ports['object_manager']}",
        "--worker-port-list=" + ",".join(str(ports[k]) for k in workers),
        *resources,
        "--disable-usage-stats",
        "--log-style=record",
        "--log-color=false",
        f"--temp-dir={tmp}",
    ]


def ray_env(
    environ: dict[str, str], role: str, ports: dict[str, int], base: Path, marker: str
) -> dict[str, str]:
    """The environment of ``ray start`` and everything it starts."""
    env = {
        **environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # the node's address stays as given
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(base / TOKEN),
        **NODE_ENV,
        # stop at once on SIGTERM: Slurm's KillWait (seconds) bounds the job's stop, and a
        # drain (30 s by default) would outlast it
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        MARKER: marker,
    }
    env.pop("RAY_AUTH_TOKEN", None)  # the token is read from its file, never inherited
    if role == "head":
        env["DASHBOARD_METRIC_PORT"] = str(ports["dash_metrics"])
        env["AUTOSCALER_METRIC_PORT"] = str(ports["autoscaler_metrics"])
    return env


def leftovers(marker: str) -> list[int]:
    """Live processes (other than this one) whose environment carries ``marker``."""
    needle = f"{MARKER}={marker}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_leftovers(marker: str) -> None:
    for _ in range(20):
        pids = leftovers(marker)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def wait_child(child: subprocess.Popen[bytes], stop: Stop) -> int:
    """The child's status once it exits, or -9 once STOP_GRACE passed after a stop request."""
    while True:
        status = child.poll()
        if status is not None:
            return status
        if stop.requested and time.monotonic() - stop.at > STOP_GRACE:
            return -signal.SIGKILL
        time.sleep(0.1)


def run_once(
    args: argparse.Namespace, stop: Stop, addr: str, base: Path, resources: list[str]
) -> int:
    """Start Ray once, announce it, wait until it ends; its exit status."""
    names = list(HEAD_PORTS if args.role == "head" else WORKER_PORTS)
    names += [f"w{i}" for i in range(args.worker_ports)]
    gcs = ""
    if args.role == "worker":  # the head's address now (it may have restarted since launch)
        gcs = read_text(base / GCS_FILE) or args.gcs or wait_file(base / GCS_FILE, stop)
    ports = free_ports(addr, names)
    tmp = tempfile.mkdtemp(prefix="dray", dir="/tmp")
    marker = secrets.token_hex(8)
    env = ray_env(dict(os.environ), args.role, ports, base, marker)
    argv = ray_argv(args.role, addr, ports, gcs, resources, tmp)
    say(f"starting Ray {args.role} on {addr}" + (f", head {gcs}" if gcs else ""))
    try:
        stop.child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=2)
        announced: tuple[str, ...] = ("agent_http",)
        if args.role == "head":
            write_atomic(base / GCS_FILE, f"{addr}:{ports['gcs']}")
            announced = ("gcs", "dashboard", "client")
        for name in announced:
            print(announce_line(name, addr, ports[name]), flush=True)
        if stop.requested:
            stop.child.send_signal(signal.SIGTERM)
        status = wait_child(stop.child, stop)
    finally:
        kill_leftovers(marker)  # the child too, if it outlived STOP_GRACE
        stop.child = None
        shutil.rmtree(tmp, ignore_errors=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dshell_ray.jobnode")
    parser.add_argument("role", choices=("head", "worker"))
    parser.add_argument("--dir", required=True, help="the framework's shared dir")
    parser.add_argument("--overhead", type=float, required=True, help="MiB for Ray itself")
    parser.add_argument("--worker-ports", type=int, default=16)
    parser.add_argument("--gcs", default="", help="the head's GCS address (workers)")
    parser.add_argument("--address", default=None, help="this node's IP (default: Slurm's)")
    parser.add_argument("--cpus", type=int, default=None, help="without SLURM_CPUS_ON_NODE")
    parser.add_argument("--mem", type=float, default=None, help="MiB, without SLURM_MEM_*")
    args = parser.parse_args(argv)
    stop = Stop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    base = Path(args.dir).resolve()
    addr = node_address(args.address, dict(os.environ))
    resources = node_resources(args, dict(os.environ))
    if args.role == "head":
        ensure_token(base)
    else:
        wait_file(base / TOKEN, stop)
    failures: list[float] = []
    delay = BACKOFF[0]
    while True:
        status = run_once(args, stop, addr, base, resources)
        if stop.requested:
            return 0
        now = time.monotonic()
        failures = [t for t in failures if now - t < WINDOW] + [now]
        say(f"Ray {args.role} ended with status {status} ({len(failures)} in {WINDOW:g}s)")
        if len(failures) >= MAX_FAILURES:
            return status or 1
        end = now + delay
        while time.monotonic() < end and not stop.requested:
            time.sleep(0.2)
        if stop.requested:
            return 0
        delay = min(delay * BACKOFF[1], BACKOFF[2])


if __name__ == "__main__":
    sys.exit(main())
