"""pytest fixtures for dshell and its plugins.

``pytest_plugins = ["dshell.testing.fixtures"]`` in a conftest gives:

- ``dshell_dirs``: private config/state/runtime dirs (env vars set for this test only);
- ``fake_mount``: ``dshell_dirs`` plus the fake backend mounted at ``/f``;
- ``cli``: run a dshell command line in-process and get (status, stdout, stderr);
- ``dshell_exe``: run the real ``dshell`` executable in a subprocess with the same env.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE = "fake=dshell.testing.fake:FakeBackend"


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


class _Text(io.StringIO):
    def __init__(self, tty: bool, value: str = "") -> None:
        super().__init__(value)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@dataclass
class Dirs:
    config: Path
    state: Path
    runtime: Path


def _warn_with_log(what: str) -> None:
    """A warning (pytest lists it in the run's summary) with the end of the engine's log."""
    import warnings

    log = Path(os.environ.get("DSHELL_STATE_DIR", "")) / "logs" / "engine.log"
    try:
        tail = log.read_text(errors="replace").splitlines()[-40:]
    except OSError:
        tail = [f"({log}: no log)"]
    warnings.warn("\n".join([what, *tail]), stacklevel=2)


@pytest.fixture
def dshell_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dirs]:
    """Private dirs; the runtime dir is short (Unix socket paths are limited to ~108 bytes)."""
    runtime = Path(tempfile.mkdtemp(prefix="dt", dir="/tmp"))
    dirs = Dirs(tmp_path / "config", tmp_path / "state", runtime)
    monkeypatch.setenv("DSHELL_CONFIG_DIR", str(dirs.config))
    monkeypatch.setenv("DSHELL_STATE_DIR", str(dirs.state))
    monkeypatch.setenv("DSHELL_RUNTIME_DIR", str(dirs.runtime))
    monkeypatch.delenv("NO_COLOR", raising=False)
    yield dirs
    stop_local_engine(runtime)  # a test's `ps /` starts the engine of /local
    shutil.rmtree(runtime, ignore_errors=True)


def stop_local_engine(runtime: Path) -> None:
    """Stop the engine of ``runtime`` (killing its tasks), then its executor; bounded, and a
    no-op when none runs. Without it a test's engine outlived its temporary dirs."""
    import contextlib
    import signal
    import time

    from dshell_local import control

    if not any((runtime / name).exists() for name in ("engine.pid", "executor.lock")):
        return
    try:
        control.stop(kill_tasks=True, timeout=60)
    except Exception as exc:  # noqa: BLE001 - reported below; the engine is killed next
        _warn_with_log(f"the engine of {runtime} did not stop: {exc}")
    for name in ("engine.pid", "executor.lock"):
        try:
            pid = int((runtime / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if not control.alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while control.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if control.alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fake_mount(dshell_dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> Dirs:
    """The fake backend mounted at /f (plus the default /local)."""
    monkeypatch.setenv("DSHELL_BACKENDS", FAKE)
    from dshell.backend import Mount
    from dshell.namespace import MountTable

    MountTable().update(lambda ms: [Mount(target="/f", type="fake", source="fake")])
    return dshell_dirs


CliRunner = Callable[..., Result]


def run_cli(
    line: str | list[str],
    *,
    stdin: str = "",
    tty: bool = False,
    cwd: str = "/",
    width: int = 120,
) -> Result:
    """One dshell command line (or argv list), in-process, in the environment as it is now."""
    import shlex

    from dshell.lines import run_line
    from dshell.session import Env, Session

    env = Env(
        stdin=_Text(tty, stdin),
        stdout=_Text(tty),
        stderr=_Text(tty),
        environ=dict(os.environ),
        width=width,
    )
    session = Session(env=env, cwd=cwd)
    try:
        if isinstance(line, list):
            from dshell.cli.main import invoke

            status = invoke(session, line)
        else:
            shlex.split(line)  # fail early on a malformed test line
            status = run_line(session, line)
    finally:
        session.close()
    return Result(status, env.stdout.getvalue(), env.stderr.getvalue())  # type: ignore[attr-defined]


@pytest.fixture
def cli() -> CliRunner:
    """``cli("ps -o json", stdin="", tty=False, cwd="/f")`` → Result, run in-process."""
    return run_cli


@pytest.fixture
def dshell_exe() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real CLI: ``dshell_exe("ps", "-o", "json", input="")``."""

    def run(
        *args: str, input: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dshell", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )

    return run
