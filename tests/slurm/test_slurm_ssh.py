"""The SSH path: host-key verification, argv quoting (no injection), one reused connection."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dshell.errors import UnreachableError, UsageError
from dshell.model import RunSpec, TaskState
from dshell.net.ssh import SshConnection, SshTarget

from dshell_slurm.backend import SlurmBackend
from dshell_slurm.runner import SshRunner

from .conftest import SshLogin, ssh_mount


@pytest.fixture
def remote(
    ssh_login: SshLogin, slurm_conf: str, slurm_workdir: str, slurm_state: object
) -> Iterator[SlurmBackend]:
    backend = SlurmBackend(ssh_mount(ssh_login, slurm_conf, slurm_workdir))
    yield backend
    backend.close()


def server_fingerprint(login: SshLogin) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", login.known_hosts], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]  # "256 SHA256:… [127.0.0.1]:2222 (ED25519)"


def conn(login: SshLogin, known_hosts: str) -> SshConnection:
    return SshConnection(
        SshTarget.parse(login.source), known_hosts=known_hosts, identity=login.key, timeout=5
    )


def test_unknown_host_key_is_refused_with_its_fingerprint(
    ssh_login: SshLogin, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    c = conn(ssh_login, str(empty))
    with pytest.raises(UnreachableError) as info:
        c.run(["true"])
    assert server_fingerprint(ssh_login) in info.value.message
    assert "not in" in info.value.message and "refusing" in info.value.message
    c.close()


def test_changed_host_key_is_refused(ssh_login: SshLogin, tmp_path: Path) -> None:
    key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{ssh_login.host}]:{ssh_login.port} {pub}\n")
    c = conn(ssh_login, str(wrong))
    with pytest.raises(UnreachableError, match="does not match"):
        c.run(["true"])
    c.close()


def test_wrong_port_and_bad_options(ssh_login: SshLogin, slurm_conf: str, tmp_path: Path) -> None:
    dead = SshLogin("ssh://root@127.0.0.1:1", ssh_login.key, ssh_login.known_hosts, port=1)
    backend = SlurmBackend(ssh_mount(dead, slurm_conf, str(tmp_path)))
    with pytest.raises(UnreachableError, match=r"127\.0\.0\.1:1\b"):
        backend.validate_mount()
    bad = SlurmBackend(ssh_mount(ssh_login, slurm_conf, str(tmp_path), identity="/no/key"))
    with pytest.raises(UsageError, match="identity"):
        bad.validate_mount()


def test_hostile_name_path_and_argv_inject_nothing(
    remote: SlurmBackend, slurm_workdir: str
) -> None:
    canary = Path(f"/tmp/dshell-pwned-{uuid.uuid4().hex}")
    payload = f"$(touch {canary})`touch {canary}`; touch {canary}; '\"&|"
    workdir = Path(slurm_workdir) / f"dir {payload}".replace("/", "_")
    workdir.mkdir()
    (task,) = remote.submit(
        RunSpec(command=["echo", payload], name=f"x'{payload}", workdir=str(workdir))
    )
    done = remote.wait_task(task.id, timeout=60)
    assert done.state == TaskState.FINISHED and done.name == f"x'{payload}"
    assert done.sandbox == str(workdir)
    assert b"".join(remote.read_file(task.id, "stdout")) == f"{payload}\n".encode()
    assert not canary.exists(), "a quoted argument was interpreted by a shell"
    assert not (Path.home() / canary.name).exists()


def test_one_connection_serves_the_mount(remote: SlurmBackend) -> None:
    remote.validate_mount()
    runner = remote.runner
    assert isinstance(runner, SshRunner)
    client = runner.conn.client()
    remote.list_agents()
    (task,) = remote.submit(RunSpec(command=["sh", "-c", "echo out; echo err >&2"]))
    remote.wait_task(task.id, timeout=60)
    assert b"".join(c.data for c in remote.read_output(task.id, stream="stderr")) == b"err\n"
    assert runner.conn.client() is client  # reused, not reconnected


def test_exec_and_follow_over_ssh(remote: SlurmBackend) -> None:
    (task,) = remote.submit(RunSpec(command=["sleep", "300"], name="ssh-exec"))
    try:
        deadline = time.monotonic() + 60
        while remote.get_task(task.id).state != TaskState.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        handle = remote.exec(task.id, ["sh", "-c", "echo $SLURM_JOB_ID; exit 5"])
        out = b"".join(c.data for c in handle.chunks() if c.stream == "stdout")
        assert (out, handle.status()) == (f"{task.id}\n".encode(), 5)
        handle.close()
    finally:
        remote.kill(task.id)
    assert remote.wait_task(task.id, timeout=60).state == TaskState.KILLED
