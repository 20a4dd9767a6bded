"""Shared test setup: dshell's own fixtures (dshell.testing.fixtures) load as a pytest plugin."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dshell_local.control import alive

_PRIVATE: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    """dshell's directories for the whole run, unless the environment names them: a test that
    sets none of its own (``dshell_dirs``, ``engine_dirs`` and the like set theirs) writes
    under these, never under the user's ~/.config/dshell or ~/.local/state/dshell."""
    import tempfile

    for var, prefix in (
        ("DSHELL_CONFIG_DIR", "dsc"),
        ("DSHELL_STATE_DIR", "dss"),
        ("DSHELL_RUNTIME_DIR", "dsr"),  # short: a Unix socket path lives in it
    ):
        if not os.environ.get(var):
            _PRIVATE[var] = os.environ[var] = tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop an engine the run started in its own directories, then remove them."""
    import shutil

    from dshell.testing.fixtures import stop_local_engine

    if "DSHELL_RUNTIME_DIR" in _PRIVATE:
        stop_local_engine(Path(_PRIVATE["DSHELL_RUNTIME_DIR"]))
    for var, path in _PRIVATE.items():
        os.environ.pop(var, None)
        shutil.rmtree(path, ignore_errors=True)


def require_service(ok: bool, what: str) -> None:
    """In CI (CI=true) a missing service fails the test; elsewhere it is skipped with a reason."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service missing in CI: {what}")
    pytest.skip(f"service not available here: {what}")


SERVICES_SH = Path(__file__).resolve().parent / "services" / "services.sh"


def run_services(
    svc_dir: str, script: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (the tests' own constant text) with services.sh sourced, SVC=svc_dir."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "$0"; {script}', str(SERVICES_SH)],
        env={**os.environ, "SVC": svc_dir},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


pid_alive = alive  # tests' name for it


def proc_pids(match: Callable[[bytes, bytes], bool]) -> list[int]:
    """Live processes whose (environment, command line) ``match`` accepts."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if match(env, cmd) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def sandbox_pids(state: Path, cmdline: Path | None = None) -> list[int]:
    """Live processes launched by the engine whose state dir is ``state`` (their environment
    names a sandbox under it), and those naming ``cmdline`` on their command line."""
    marker = f"DSHELL_SANDBOX={state}/".encode()
    named = str(cmdline).encode() if cmdline is not None else None
    return proc_pids(lambda env, cmd: marker in env or (named is not None and named in cmd))
