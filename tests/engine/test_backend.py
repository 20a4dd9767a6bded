"""LocalBackend: the dshell.backend API over the engine, starting it on first use."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from dshell.backend import Capability, Mount, TaskQuery
from dshell.errors import UnreachableError
from dshell.model import RunSpec, TaskState

from dshell_local import control
from dshell_local.backend import LocalBackend

from .conftest import wait_until
from .helpers import SMALL

pytestmark = pytest.mark.engine


@pytest.fixture
def backend(engine_dirs: Path) -> LocalBackend:
    b = LocalBackend(Mount(target="/local", type="local", source="localhost"))
    yield b  # type: ignore[misc]
    b.close()


def test_first_use_starts_the_engine(backend: LocalBackend) -> None:
    assert control.status() is None
    assert backend.list_tasks(TaskQuery()) == []
    status = control.status()
    assert status is not None
    assert {Capability.EXEC, Capability.SERVICES, Capability.DEPLOYMENTS} <= backend.capabilities


def test_autostart_no_refuses(engine_dirs: Path) -> None:
    b = LocalBackend(Mount(target="/local", type="local", options={"autostart": "no"}))
    with pytest.raises(UnreachableError):
        b.list_tasks(TaskQuery())
    assert control.status() is None


def test_backend_task_verbs(backend: LocalBackend) -> None:
    spec = RunSpec(
        command=["sh", "-c", "echo out; echo err >&2; trap 'exit 5' USR1; echo ready; "
                 "while :; do sleep 0.05; done"],
        resources=SMALL, labels={"app": "demo"},
    )  # fmt: skip
    (task,) = backend.submit(spec)
    wait_until(lambda: b"ready" in b"".join(backend.read_file(task.id, "stdout")), what="ready")
    assert [t.id for t in backend.list_tasks(TaskQuery(selector={"app": "demo"}))] == [task.id]
    assert backend.list_tasks(TaskQuery(selector={"app": "other"})) == []
    assert backend.get_task(task.id).state is TaskState.RUNNING
    assert {e.name for e in backend.list_files(task.id, "")} >= {"stdout", "stderr"}
    chunks = list(backend.read_output(task.id, stream="stderr"))
    assert b"".join(c.data for c in chunks) == b"err\n" and chunks[0].stream == "stderr"
    backend.kill(task.id, signal=signal.SIGUSR1)
    done = backend.wait_task(task.id, timeout=30)
    assert done.state is TaskState.FAILED and done.exit_code == 5
    assert backend.list_tasks(TaskQuery()) == []
    assert [t.id for t in backend.list_tasks(TaskQuery(all=True))] == [task.id]
    agents = backend.list_agents()
    assert len(agents) == 1 and agents[0].backend == "local"
    events = list(backend.events(since=0, follow=False))
    assert events[-1].task is not None and events[-1].task.state is TaskState.FAILED


def test_backend_attach(backend: LocalBackend) -> None:
    (task,) = backend.submit(RunSpec(command=["sh", "-c", "echo a; echo b >&2; exit 2"],
                                     resources=SMALL))  # fmt: skip
    chunks = list(backend.attach(task.id))
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"a\n"
    assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"b\n"
    assert backend.last_exit is not None and backend.last_exit.status == 2
