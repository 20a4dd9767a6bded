"""The contract every backend passes.

Subclass :class:`BackendContract` in a backend's tests and provide fixtures:

- ``backend``: a ready :class:`~dshell.backend.Backend` instance;
- ``short_command`` (optional): argv that prints ``hello`` and exits 0 (default: echo);
- ``long_command`` (optional): argv that runs until killed (default: ``sleep 300``);
- ``failing_command`` (optional): argv that exits 3 (default: ``sh -c 'exit 3'``).

Tests for capabilities a backend does not declare check that the method raises
UNSUPPORTED (never anything else); the others exercise the capability for real.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ..backend import Backend, Capability, TaskQuery
from ..errors import ExitCode, NotFoundError, TimeoutExpired, UnsupportedError
from ..model import TERMINAL_STATES, Agent, RunSpec, Task, TaskState


def _wait_terminal(backend: Backend, task_id: str, timeout: float = 60.0) -> Task:
    deadline = time.monotonic() + timeout
    while True:
        task = backend.get_task(task_id)
        if task.state in TERMINAL_STATES:
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"{task_id} still {task.state} after {timeout}s")
        if Capability.ATTACH in backend.capabilities:
            try:
                return backend.wait_task(task_id, timeout=1.0)
            except TimeoutExpired:
                continue
        else:
            time.sleep(0.2)


class BackendContract:
    """pytest test methods shared by every backend's tests."""

    @pytest.fixture
    def short_command(self) -> list[str]:
        return ["echo", "hello"]

    @pytest.fixture
    def long_command(self) -> list[str]:
        return ["sleep", "300"]

    @pytest.fixture
    def failing_command(self) -> list[str]:
        return ["sh", "-c", "exit 3"]

    # ---- declaration ------------------------------------------------------------------------

    def test_declares_name_and_capabilities(self, backend: Backend) -> None:
        assert isinstance(backend.name, str) and backend.name
        assert all(isinstance(c, Capability) for c in backend.capabilities)
        assert Capability.TASKS in backend.capabilities
        assert backend.availability().available in (True, False)

    def test_undeclared_capabilities_raise_unsupported(self, backend: Backend) -> None:
        probes: dict[Capability, Any] = {
            Capability.RUN: lambda: backend.submit(RunSpec(command=["true"])),
            Capability.KILL: lambda: backend.kill("no-such-task"),
            Capability.EXEC: lambda: backend.exec("no-such-task", ["true"]),
            Capability.STATS: backend.stats,
            Capability.SERVICES: backend.list_services,
            Capability.VOLUMES: lambda: backend.admin_call("vol_ls"),
        }
        for cap, probe in probes.items():
            if cap not in backend.capabilities:
                with pytest.raises(UnsupportedError) as info:
                    probe()
                assert info.value.code == ExitCode.UNSUPPORTED

    # ---- listing -----------------------------------------------------------------------------

    def test_list_tasks_returns_tasks(self, backend: Backend) -> None:
        tasks = backend.list_tasks(TaskQuery(all=True))
        assert isinstance(tasks, list)
        assert all(isinstance(t, Task) and t.id for t in tasks)

    def test_unknown_task_is_not_found(self, backend: Backend) -> None:
        with pytest.raises(NotFoundError):
            backend.get_task("no-such-task-0000")

    def test_agents_have_ids_and_resources(self, backend: Backend) -> None:
        agents = backend.list_agents()
        assert agents, "a cluster has at least one agent"
        assert all(isinstance(a, Agent) and a.id and a.hostname for a in agents)
        assert all(a.total.cpus > 0 and a.total.mem > 0 for a in agents)

    # ---- running -------------------------------------------------------------------------------

    def test_run_to_completion(self, backend: Backend, short_command: list[str]) -> None:
        if Capability.RUN not in backend.capabilities:
            return  # undeclared: covered by test_undeclared_capabilities_raise_unsupported
        (task,) = backend.submit(RunSpec(command=short_command, name="contract"))
        assert task.id and task.name == "contract"
        done = _wait_terminal(backend, task.id)
        assert done.state == TaskState.FINISHED and done.exit_code == 0
        assert next(h.state for h in done.history) == "STAGING"
        assert done.history[-1].state == "FINISHED"
        ids = {t.id for t in backend.list_tasks(TaskQuery(all=True))}
        assert task.id in ids
        if Capability.FILES in backend.capabilities:
            out = b"".join(c.data for c in backend.read_output(task.id))
            assert out == b"hello\n"

    def test_failure_keeps_exit_code(self, backend: Backend, failing_command: list[str]) -> None:
        if Capability.RUN not in backend.capabilities:
            return  # undeclared: covered by test_undeclared_capabilities_raise_unsupported
        (task,) = backend.submit(RunSpec(command=failing_command))
        done = _wait_terminal(backend, task.id)
        assert done.state == TaskState.FAILED and done.exit_code == 3

    def test_kill_ends_task(self, backend: Backend, long_command: list[str]) -> None:
        if not {Capability.RUN, Capability.KILL} <= backend.capabilities:
            return  # undeclared: covered by test_undeclared_capabilities_raise_unsupported
        (task,) = backend.submit(RunSpec(command=long_command))
        backend.kill(task.id, grace=1.0)
        done = _wait_terminal(backend, task.id)
        assert done.state == TaskState.KILLED
        active = {t.id for t in backend.list_tasks(TaskQuery())}
        assert task.id not in active

    def test_instances(self, backend: Backend, short_command: list[str]) -> None:
        if Capability.RUN not in backend.capabilities:
            return  # undeclared: covered by test_undeclared_capabilities_raise_unsupported
        tasks = backend.submit(RunSpec(command=short_command, instances=3))
        assert len({t.id for t in tasks}) == 3
        for t in tasks:
            assert _wait_terminal(backend, t.id).exit_code == 0

    def test_idempotency_key(self, backend: Backend, short_command: list[str]) -> None:
        if Capability.IDEMPOTENCY not in backend.capabilities:
            return  # undeclared: covered by test_undeclared_capabilities_raise_unsupported
        key = f"contract-{time.time_ns()}"
        first = backend.submit(RunSpec(command=short_command, idempotency_key=key))
        again = backend.submit(RunSpec(command=short_command, idempotency_key=key))
        assert [t.id for t in first] == [t.id for t in again]

    def test_events_have_increasing_sequence(
        self, backend: Backend, short_command: list[str]
    ) -> None:
        if not {Capability.EVENTS, Capability.RUN} <= backend.capabilities:
            return  # undeclared: covered by test_undeclared_capabilities_raise_unsupported
        (task,) = backend.submit(RunSpec(command=short_command))
        _wait_terminal(backend, task.id)
        seqs = [e.seq for e in backend.events(since=0, follow=False)]
        assert seqs and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
