"""Start, stop and query the engine daemon (used by ``dshell engine`` and by auto-start).

Two concurrent first uses start one engine: :func:`start` holds an flock on
``RUNTIME/engine.lock`` from its check to the moment the new engine answers, so the second
caller finds it running. (The daemon also holds ``RUNTIME/engine.pid`` locked for its whole
life, so a second daemon started by hand exits at once.) Standard library only, plus the
engine's config module when an engine has to be started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dshell import paths
from dshell.errors import BackendError, UnreachableError

from . import api
from .client import EngineClient

START_TIMEOUT = 30.0
FAILED_MARK = "dshell engine failed:"  # the daemon's line on a failed start (daemon.py)
STOP_TIMEOUT = 120.0


def socket_path() -> Path:
    """The engine's Unix socket in this user's runtime dir."""
    return paths.runtime_dir() / api.SOCKET_NAME


def client(timeout: float | None = 30.0) -> EngineClient:
    return EngineClient(socket_path(), timeout)


def _daemon_env() -> dict[str, str]:
    """The environment of a new daemon: ours, with dshell and dshell_local importable."""
    here = Path(__file__).resolve().parent.parent  # holds dshell_local
    import dshell

    core = Path(dshell.__file__).resolve().parent.parent  # holds dshell
    env = dict(os.environ)
    extra = [str(here), str(core)]
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra))
    return env


def _log_tail(lines: int = 20) -> str:
    logs = paths.state_dir() / "logs"
    out = []
    for name in ("engine.out", "engine.log"):
        try:
            text = (logs / name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        out += [f"{name}: {line}" for line in text]
    return "\n".join(out)


def status() -> api.EngineStatus | None:
    """The running engine's status, or None when none answers."""
    with client(timeout=5.0) as c:
        if not c.ping():
            return None
        return c.status()


def start(wait: bool = True, timeout: float = START_TIMEOUT) -> api.EngineStatus | None:
    """Start the engine unless it runs; with ``wait``, return its status once it answers."""
    runtime = paths.runtime_dir()
    with client(timeout=5.0) as c:
        if c.ping():
            return c.status()
        with paths.locked(runtime / api.LOCK_NAME, timeout=None):
            if c.ping():
                return c.status()
            from . import config

            config.load()  # a bad config is reported here, by the caller's process
            out = paths.state_dir() / "logs" / "engine.out"
            seen = out.stat().st_size if out.exists() else 0
            _spawn_daemon()
            if not wait:
                return None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if c.ping(timeout=2.0):
                    return c.status()
                _raise_if_failed(out, seen)
                time.sleep(0.05)
    raise UnreachableError(
        f"the engine did not start within {timeout:g}s\n{_log_tail()}",
        hint=f"see {paths.state_dir() / 'logs'}",
    )


def _raise_if_failed(out: Path, seen: int) -> None:
    """The daemon reports a failed start on its stderr (``engine.out``): fail fast with it."""
    try:
        with open(out, "rb") as f:
            f.seek(seen)
            new = f.read(65536).decode(errors="replace")
    except OSError:
        return
    for line in new.splitlines():
        if line.startswith(FAILED_MARK):
            raise BackendError(line, hint=f"see {paths.state_dir() / 'logs'}")


def _spawn_daemon() -> None:
    logs = paths.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "engine.out", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dshell_local.daemon", "--daemonize"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=_daemon_env(),
            cwd="/",
            start_new_session=True,
        )
    proc.wait()  # the intermediate process exits as soon as the daemon has forked


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")


def stop(kill_tasks: bool = False, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the engine (tasks keep running unless ``kill_tasks``); False if none ran."""
    with client(timeout=None) as c:
        if not c.ping():
            return False
        pid = c.status().pid
        c.shutdown(kill_tasks)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            raise UnreachableError(f"the engine (pid {pid}) did not stop within {timeout:g}s")
        time.sleep(0.05)
    return True


def ensure_running() -> EngineClient:
    """A client of a running engine, starting one on first use."""
    c = client()
    if not c.ping():
        start()
    return c
