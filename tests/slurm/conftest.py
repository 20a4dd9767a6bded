"""Real services for the Slurm backend's tests, started once per test run.

- ``slurm_conf``: a running Slurm (munge, slurmctld, 2+ slurmd on loopback). Reuses the one
  ``tests/run-all.sh`` started when ``SLURM_CONF`` is exported and answers; otherwise starts a
  private one with ``tests/services/services.sh`` and stops it at the end of the session.
- ``ssh_login``: sshd on 127.0.0.1:2222 with a generated key and known_hosts. Reuses
  ``DSHELL_TEST_SSH_KEY``/``DSHELL_TEST_KNOWN_HOSTS`` when exported, else starts its own.

Without the services, tests are skipped with the reason — and FAIL when ``CI=true``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dshell.backend import Mount

from conftest import require_service, run_services

BACKENDS = "slurm=dshell_slurm.backend:SlurmBackend"
PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")


services = run_services


def _ctld_up(conf: str) -> bool:
    if not shutil.which("scontrol"):
        return False
    done = subprocess.run(
        ["scontrol", "ping"],
        env={**os.environ, "SLURM_CONF": conf},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return "is UP" in done.stdout


def _can_start(*tools: str) -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) or os.path.exists(t) for t in tools)


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[str]:
    """SLURM_CONF of a running test cluster (exported for the whole session)."""
    conf = os.environ.get("SLURM_CONF")
    if conf and _ctld_up(conf):
        yield conf
        return
    require_service(
        _can_start("slurmctld", "slurmd", "munged", "/usr/sbin/munged"),
        "Slurm: run tests/run-all.sh, or as root install slurm-wlm and munge",
    )
    svc = tempfile.mkdtemp(prefix="dss", dir="/tmp")
    started = services(svc, "slurm_start 2")
    conf = f"{svc}/slurm/slurm.conf"
    try:
        require_service(started.returncode == 0, f"Slurm did not start: {started.stderr[-1500:]}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", conf)
            yield conf
    finally:
        services(svc, "slurm_stop")
        shutil.rmtree(svc, ignore_errors=True)


@dataclass(frozen=True)
class SshLogin:
    """How the tests reach the loopback "login node"."""

    source: str  # ssh://user@127.0.0.1:2222
    key: str
    known_hosts: str
    host: str = "127.0.0.1"
    port: int = 2222


def _banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="session")
def ssh_login() -> Iterator[SshLogin]:
    user = getpass.getuser()
    key, known = os.environ.get("DSHELL_TEST_SSH_KEY"), os.environ.get("DSHELL_TEST_KNOWN_HOSTS")
    if key and known and os.path.exists(key) and _banner("127.0.0.1", 2222):
        yield SshLogin(f"ssh://{user}@127.0.0.1:2222", key, known)
        return
    require_service(
        _can_start("/usr/sbin/sshd", "ssh-keygen"),
        "sshd on 127.0.0.1:2222: run tests/run-all.sh, or as root install openssh-server",
    )
    svc = tempfile.mkdtemp(prefix="dsh", dir="/tmp")
    started = services(svc, "sshd_start")
    try:
        require_service(started.returncode == 0, f"sshd did not start: {started.stderr[-1500:]}")
        yield SshLogin(
            f"ssh://{user}@127.0.0.1:2222", f"{svc}/ssh/id_ed25519", f"{svc}/ssh/known_hosts"
        )
    finally:
        services(svc, "sshd_stop")
        shutil.rmtree(svc, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_workdir() -> Iterator[str]:
    """Where test jobs run and write their output (fresh per session: no stale files)."""
    path = tempfile.mkdtemp(prefix="dsw", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def slurm_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private dshell state dir (the backend's cache and event log live there)."""
    monkeypatch.setenv("DSHELL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DSHELL_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "state"


def local_mount(conf: str, workdir: str, **options: str) -> Mount:
    opts = {"slurm_conf": conf, "workdir": workdir, "poll": "0.2", **options}
    return Mount(target="/hpc", type="slurm", source="localhost", options=opts)


def ssh_mount(login: SshLogin, conf: str, workdir: str, **options: str) -> Mount:
    opts = {
        "slurm_conf": conf,
        "workdir": workdir,
        "poll": "0.2",
        "identity": login.key,
        "known_hosts": login.known_hosts,
        **options,
    }
    return Mount(target="/hpc", type="slurm", source=login.source, options=opts)
