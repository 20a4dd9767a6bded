"""The task of a nested engine: ``python -m dshell_local.fwchild --state S --runtime R …``.

Run by the host as the service ``fw-NAME`` (see :mod:`dshell_local.fwkind`). It writes the
child's ``engine.toml`` from what the host gave the task — one agent with the task's cpus,
memory and disk minus the child's own overhead, and the task's ports (``PORT0``…) as its port
ranges — then runs the child's daemon in the foreground with its own XDG dirs and supervises it.

Why a supervisor: when a task's main process exits, the host kills everything left in the
task's cgroups (the child's executor and tasks included) before it starts a new instance. A
child daemon that dies is therefore restarted *here*, in the same task: its executor and tasks
live on and it re-adopts them (its recovery), as the host engine does after a crash. If the
daemon keeps failing (5 times within a minute) the supervisor exits, and the host restarts the
whole task with its restart backoff. SIGTERM (a kill of the task, ``fw rm``) asks the daemon to
stop after killing its tasks (each gets its SIGTERM and grace), then exits; whatever is left
then goes with the task's cgroups.

Standard library only while it supervises (it stays in the task's memory share for the
framework's whole life); the engine client is imported only to stop the daemon.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

OVERHEAD_CPUS = 0.1  # keep in step with fwkind.OVERHEAD
OVERHEAD_MEM = 80.0
MIN_CPUS = 0.01
FAILURES = 5  # daemon failures within WINDOW before the task gives up (the host restarts it)
WINDOW = 60.0
STOP_GRACE = 8.0  # seconds the daemon gets to stop on SIGTERM (the host's grace is 10)


def task_ports(environ: dict[str, str]) -> list[int]:
    """The task's ports, from ``PORT0``, ``PORT1``… in order."""
    found = {
        int(m.group(1)): int(v) for k, v in environ.items() if (m := re.fullmatch(r"PORT(\d+)", k))
    }
    return [found[i] for i in sorted(found)]


def port_ranges(ports: list[int]) -> list[tuple[int, int]]:
    """Consecutive ports merged into ranges: [31000, 31001, 31005] -> [(31000, 31001), (31005,
    31005)]."""
    ranges: list[tuple[int, int]] = []
    for p in sorted(set(ports)):
        if ranges and ranges[-1][1] == p - 1:
            ranges[-1] = (ranges[-1][0], p)
        else:
            ranges.append((p, p))
    return ranges


def engine_toml(name: str, cpus: float, mem: float, disk: float, ports: list[int]) -> str:
    """The child's config: one agent holding the task's share minus the child's overhead."""
    ranges = ", ".join(f"[{lo}, {hi}]" for lo, hi in port_ranges(ports))
    return (
        "# written by dshell_local.fwchild at each start: the share the host gave this task\n"
        "[[agents]]\n"
        f'id = "{name}"\n'
        f"cpus = {max(MIN_CPUS, round(cpus - OVERHEAD_CPUS, 3))}\n"
        f"mem = {max(0.0, mem - OVERHEAD_MEM)}\n"
        f"disk = {max(0.0, disk)}\n"
        f"ports = [{ranges}]\n"
    )


def child_env(state: Path, runtime: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DSHELL_ENGINE_CONFIG", None)
    env.update(
        {
            "DSHELL_CONFIG_DIR": str(state / "config"),
            "DSHELL_STATE_DIR": str(state),
            "DSHELL_RUNTIME_DIR": str(runtime),
            # the child stamps its tasks with the host task it runs in (`parent_task`)
            "DSHELL_PARENT_TASK": os.environ.get("DSHELL_TASK_ID", ""),
        }
    )
    return env


class _Stop(Exception):
    """SIGTERM or SIGINT: stop supervising."""


class Supervisor:
    """Runs the child daemon and restarts it when it dies on its own."""

    def __init__(self, state: Path, runtime: Path) -> None:
        self.env = child_env(state, runtime)
        self.socket = runtime / "engine.sock"
        self.out = state / "logs" / "engine.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.out, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "dshell_local.daemon"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                cwd="/",
                start_new_session=True,  # a kill of the task signals us, and we stop it
            )

    def _on_signal(self, *_: object) -> None:
        raise _Stop  # out of the blocking wait (a plain flag would let waitpid resume)

    def _stop_daemon(self, proc: subprocess.Popen[bytes]) -> None:
        """Ask the daemon to kill its tasks and stop; SIGTERM, then SIGKILL, if it cannot."""
        if proc.poll() is None:
            try:
                from .client import EngineClient

                with EngineClient(self.socket, STOP_GRACE) as client:
                    client.shutdown(kill_tasks=True)
            except Exception:  # noqa: BLE001 - any failure: fall back to signals
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _supervise(self) -> int:
        failures: list[float] = []
        while True:
            self.proc = self._spawn()
            code = self.proc.wait()
            now = time.monotonic()
            failures = [t for t in failures if now - t < WINDOW] + [now]
            print(f"fwchild: engine exited ({code}); restarting", file=sys.stderr, flush=True)
            if len(failures) >= FAILURES:
                print("fwchild: engine keeps failing; giving up", file=sys.stderr, flush=True)
                return 1
            time.sleep(min(5.0, 0.2 * 2 ** (len(failures) - 1)))

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT (0) or until the daemon keeps failing (1)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            code = self._supervise()
        except _Stop:
            code = 0
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.proc is not None:
            self._stop_daemon(self.proc)
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dshell_local.fwchild")
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--runtime", required=True, type=Path)
    parser.add_argument("--cpus", required=True, type=float)
    parser.add_argument("--mem", required=True, type=float)
    parser.add_argument("--disk", type=float, default=0.0)
    args = parser.parse_args(argv)
    state, runtime = args.state, args.runtime
    (state / "config").mkdir(parents=True, exist_ok=True)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = engine_toml(args.name, args.cpus, args.mem, args.disk, task_ports(dict(os.environ)))
    tmp = state / "config" / "engine.toml.tmp"
    tmp.write_text(config, encoding="utf-8")
    os.replace(tmp, state / "config" / "engine.toml")
    return Supervisor(state, runtime).run()


if __name__ == "__main__":
    sys.exit(main())
