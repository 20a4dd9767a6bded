"""Services benchmark. Prints figures (CPU shares, and ratios to baselines measured in the same
run); asserts nothing (machines here are shared and noisy: the load average is printed).

    python bench/services.py [health ...] [--instances 200] [--interval 1] [--duration 20]

Measurements (each a function taking the parsed arguments, registered in MEASUREMENTS):

``health``
    CPU of one HealthMonitor watching N instances with HTTP checks every ``interval`` s (goal:
    < 10 % of one core for 200 instances at 1 s). The N tiny HTTP servers run in a separate
    process so that their CPU is not counted; the monitor runs in this one. CPU is
    ``time.process_time()`` (user + system, every thread) per wall second. Baselines, same run,
    same servers: the same number of GETs done with blocking sockets in a plain loop (the floor
    for one request from Python), and the same schedule driven by aiohttp's client (what the
    monitor would cost with it instead of its own minimal HTTP/1.1 exchange).

``engine-health``
    The same goal measured on the real engine: a private engine deploys N instances of a
    trivial HTTP service with 1 s checks; the CPU of the engine and its executor over
    ``duration`` (psutil), as % of one core.

``deploy``
    Wall time of ``dshell svc deploy`` of 100 instances of a trivial HTTP service until all
    are healthy (checks every 0.2 s), as a ratio to the baseline: spawning the same 100
    servers directly and polling each every 0.2 s until it answers.

``rolling``
    Wall time of ``dshell svc restart`` of 20 instances (default upgrade strategy), as a ratio
    to starting 20 fresh servers directly and waiting until they answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time

import measurements

# The servers: one process, N listeners, a minimal HTTP/1.1 answer per connection. It prints
# its ports as one JSON line, serves until stdin closes, then prints the requests served.
SERVERS = r"""
import asyncio, json, sys

served = 0
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        global served
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            served += 1
            self.transport.write(ANSWER)
            self.transport.close()

async def main(n):
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Http, "127.0.0.1", 0, backlog=512) for _ in range(n)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    print(served, flush=True)

asyncio.run(main(int(sys.argv[1])))
"""


class Servers:
    """N HTTP servers in a child process (context manager); ``served()`` ends it."""

    def __init__(self, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVERS, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.ports: list[int] = json.loads(self.proc.stdout.readline())

    def served(self) -> int:
        """Close the servers; the number of requests they answered."""
        out, _ = self.proc.communicate("", timeout=30)
        return int(out.strip() or 0)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cpu_during(duration: float, loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of this process while ``loop`` runs for ``duration``."""
    c0, w0 = time.process_time(), time.monotonic()
    loop.run_until_complete(asyncio.sleep(duration))
    return time.process_time() - c0, time.monotonic() - w0


def blocking_gets(ports: list[int], count: int) -> float:
    """CPU seconds per GET with blocking sockets, one after another (the baseline)."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    c0 = time.process_time()
    for i in range(count):
        with socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=5) as s:
            s.sendall(request)
            while s.recv(4096):
                pass
    return (time.process_time() - c0) / count


def monitor_cpu(ports: list[int], interval: float, duration: float) -> tuple[float, float, int]:
    """(CPU s, wall s, instances healthy) of a HealthMonitor checking every port."""
    from dshell.specs.model import HealthCheckSpec

    from dshell_local.checks import CheckTarget, HealthMonitor, HealthStatus

    healthy: set[str] = set()

    def on_change(task_id: str, status: HealthStatus) -> None:
        (healthy.add if status.healthy else healthy.discard)(task_id)

    check = HealthCheckSpec(protocol="HTTP", path="/health", interval=interval, timeout=5,
                            delay=0, grace_period=0)  # fmt: skip
    loop = asyncio.new_event_loop()
    try:
        monitor = HealthMonitor(None, on_change)

        async def start() -> None:
            now = time.monotonic()
            for i, port in enumerate(ports):  # spread over one interval, as real starts are
                target = CheckTarget(task_id=f"bench-{i}", port_list=[port])
                monitor.watch(target, [check], now + interval * i / len(ports))

        loop.run_until_complete(start())
        cpu_during(2 * interval, loop)  # warm-up: every instance checked at least once
        cpu, wall = cpu_during(duration, loop)
        loop.run_until_complete(monitor.close())
        return cpu, wall, len(healthy)
    finally:
        loop.close()


def aiohttp_cpu(ports: list[int], interval: float, duration: float) -> tuple[float, float]:
    """(CPU s, wall s) of the same schedule with aiohttp's client (one session, no reuse)."""
    import aiohttp

    from dshell_local.checks import COALESCE

    def on_grid(when: float, grid: float) -> float:
        return math.ceil(when / grid) * grid

    loop = asyncio.new_event_loop()

    async def probe_forever(session: aiohttp.ClientSession, port: int, offset: float) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        grid = min(COALESCE, interval / 10)  # the monitor's schedule, wakeups shared alike
        due = on_grid(time.monotonic() + offset, grid)
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            async with session.get(f"http://127.0.0.1:{port}/health", timeout=timeout) as resp:
                assert 200 <= resp.status < 400
            due = on_grid(max(due + interval, time.monotonic()), grid)

    async def run() -> tuple[float, float]:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            n = len(ports)
            tasks = [
                asyncio.create_task(probe_forever(session, p, interval * i / n))
                for i, p in enumerate(ports)
            ]
            await asyncio.sleep(2 * interval)
            c0, w0 = time.process_time(), time.monotonic()
            await asyncio.sleep(duration)
            cpu, wall = time.process_time() - c0, time.monotonic() - w0
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return cpu, wall

    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def measure_health(args: argparse.Namespace) -> None:
    """HealthMonitor CPU with N instances and HTTP checks every ``interval`` s."""
    n, interval, duration = args.instances, args.interval, args.duration
    print(f"== health: {n} instances, HTTP checks every {interval:g} s, {duration:g} s measured")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with Servers(n) as servers:
        per_get = blocking_gets(servers.ports, 2000)
        cpu, wall, healthy = monitor_cpu(servers.ports, interval, duration)
        served = servers.served()
    checks_per_s = n / interval
    share = cpu / wall
    per_check = cpu / (checks_per_s * wall)
    print(f"  blocking-socket GET: {per_get * 1e6:6.0f} µs CPU each (baseline)")
    print(f"  monitor: {share * 100:5.1f} % of one core (goal < 10 %), {healthy}/{n} healthy, "
          f"{served} requests served in all")  # fmt: skip
    print(f"  monitor: {per_check * 1e6:6.0f} µs CPU per check = {per_check / per_get:4.2f}x "
          "a blocking GET")  # fmt: skip
    with Servers(n) as servers:
        a_cpu, a_wall = aiohttp_cpu(servers.ports, interval, duration)
        servers.served()
    a_share = a_cpu / a_wall
    print(f"  same schedule with aiohttp's client: {a_share * 100:5.1f} % of one core = "
          f"{a_share / share:4.2f}x the monitor")  # fmt: skip
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


# ---- the engine itself: deploy, rolling restart, health-checking CPU -------------------------

# A trivial HTTP service: ``python3 -S`` (no site: this machine's site .pth imports certifi),
# one socket, "200 OK" to every connection.
TINY = (
    "import os,socket\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(os.environ['PORT0']))); s.listen(64)\n"
    "while True:\n"
    "    c,_=s.accept(); c.recv(4096)\n"
    "    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n')\n"
    "    c.close()\n"
)


class PrivateEngine:
    """An engine of the benchmark's own (temporary config/state/runtime dirs)."""

    def __enter__(self) -> PrivateEngine:
        import tempfile

        self.root = tempfile.mkdtemp(prefix="dsb", dir="/var/tmp")  # see bench/engine.py BENCH_DIR
        for name in ("CONFIG", "STATE", "RUNTIME"):
            os.makedirs(f"{self.root}/{name.lower()}")
            os.environ[f"DSHELL_{name}_DIR"] = f"{self.root}/{name.lower()}"
        # one roomy logical agent: each instance gets a whole core of CFS quota, so that what
        # is measured is the orchestration, not the throttling of tiny cpu shares
        with open(f"{self.root}/config/engine.toml", "w") as f:
            f.write('[[agents]]\nid = "local"\ncpus = 400\nmem = 16384\nports = [[31000, 32000]]\n')
        from dshell_local import control

        self.control = control
        control.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        self.control.stop(kill_tasks=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)

    def dshell(self, *args: str) -> float:
        """Run a dshell command; its wall time."""
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dshell", *args], check=True)
        return time.perf_counter() - start

    def pids(self) -> list[int]:
        """The engine's and the executor's pids."""
        status = self.control.status()
        assert status is not None
        out = [status.pid]
        if status.executor.pid:
            out.append(status.executor.pid)
        return out


def service_spec(path: str, name: str, n: int, interval: float) -> None:
    spec = {
        "service": {
            "name": name,
            "command": [sys.executable, "-S", "-c", TINY],
            "instances": n,
            "ports": ["http"],
            "resources": {"cpus": 1, "mem": 16},
            "health_checks": [
                {"protocol": "HTTP", "port_name": "http", "delay": 0, "interval": interval,
                 "timeout": 2, "grace_period": 30}
            ],
        }
    }  # fmt: skip
    with open(path, "w") as f:
        json.dump(spec, f)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def raw_start(n: int, interval: float) -> tuple[float, list[subprocess.Popen[bytes]]]:
    """Baseline: spawn n servers directly and poll each every ``interval`` s until it answers."""
    start = time.perf_counter()
    procs = []
    ports = free_ports(n)
    for port in ports:
        env = {**os.environ, "PORT0": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-S", "-c", TINY], env=env))
    pending = set(ports)
    while pending:
        pending = {p for p in pending if not answers(p)}
        if pending:
            time.sleep(interval)
    return time.perf_counter() - start, procs


def raw_stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


def measure_deploy(args: argparse.Namespace) -> None:
    """Time to deploy 100 instances of a trivial HTTP service to healthy."""
    n, interval = args.deploy_instances, 0.2
    print(
        f"== deploy: {n} instances of a trivial HTTP service to healthy (checks every {interval}s)"
    )
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    raw, procs = raw_start(n, interval)
    raw_stop(procs)
    with PrivateEngine() as eng:
        path = f"{eng.root}/web.json"
        service_spec(path, "web", n, interval)
        took = eng.dshell("svc", "deploy", "-f", path, "--timeout", "600")
    print(f"  raw spawn + poll until all answer: {raw:6.2f} s (baseline)")
    print(f"  dshell svc deploy (to healthy):   {took:6.2f} s = {took / raw:4.2f}x the baseline")


def measure_rolling(args: argparse.Namespace) -> None:
    """Time for a rolling restart of 20 instances (default upgrade strategy)."""
    n, interval = args.rolling_instances, 0.2
    print(f"== rolling: restart of {n} instances (minimumHealthCapacity 1, maximumOverCapacity 1)")
    raw_new, procs = raw_start(n, interval)  # baseline: start n new ones, then stop the old
    old = procs
    raw_stop(old)
    with PrivateEngine() as eng:
        path = f"{eng.root}/web.json"
        service_spec(path, "web", n, interval)
        eng.dshell("svc", "deploy", "-f", path, "--timeout", "600")
        took = eng.dshell("svc", "restart", "web", "--timeout", "600")
    print(f"  raw: start {n} new, wait until they answer: {raw_new:6.2f} s (baseline)")
    print(f"  dshell svc restart (rolling, to healthy): {took:6.2f} s = {took / raw_new:4.2f}x")


def measure_engine_health(args: argparse.Namespace) -> None:
    """The engine's own CPU while it health-checks N instances with 1 s HTTP checks."""
    import psutil

    n, duration = args.instances, args.duration
    print(f"== engine-health: engine + executor CPU, {n} instances, HTTP checks every 1 s")
    with PrivateEngine() as eng:
        path = f"{eng.root}/web.json"
        service_spec(path, "web", n, 1.0)
        eng.dshell("svc", "deploy", "-f", path, "--timeout", "900")
        time.sleep(3)  # let the start-up settle
        procs = [psutil.Process(p) for p in eng.pids()]
        before = [p.cpu_times() for p in procs]
        t0 = time.perf_counter()
        time.sleep(duration)
        wall = time.perf_counter() - t0
        after = [p.cpu_times() for p in procs]
        print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    total = 0.0
    for p, b, a in zip(procs, before, after, strict=True):
        used = (a.user - b.user) + (a.system - b.system)
        total += used
        print(f"  pid {p.pid}: {used / wall * 100:5.1f} % of one core")
    print(f"  engine + executor: {total / wall * 100:5.1f} % of one core (goal < 10 %)")


MEASUREMENTS: dict[str, measurements.Measurement] = {
    "health": measure_health,
    "engine-health": measure_engine_health,
    "deploy": measure_deploy,
    "rolling": measure_rolling,
}


def main() -> None:
    measurements.run(
        __doc__,
        MEASUREMENTS,
        [
            ("--instances", int, 200),
            ("--interval", float, 1.0),
            ("--duration", float, 20.0),
            ("--deploy-instances", int, 100),
            ("--rolling-instances", int, 20),
        ],
    )


if __name__ == "__main__":
    main()
