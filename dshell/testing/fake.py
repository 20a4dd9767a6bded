"""A fake backend for unit tests: tasks in a JSON file, deterministic behaviour.

Mount it with ``DSHELL_BACKENDS=fake=dshell.testing.fake:FakeBackend`` and
``mount -t fake -o state=/tmp/x.json fake /f``. State survives across processes (each CLI
call is a new process), guarded by a file lock.

Behaviour of a launched command (argv):
- ``echo WORDS…``: finishes at once with ``WORDS`` on stdout, exit 0;
- ``exit N`` / ``false``: finishes with exit N / 1; ``oom``: FAILED with an OOM reason;
- anything else (``sleep 100``): RUNNING until killed.

Mount options: ``fail=unreachable|backend`` makes every call fail; ``caps=a,b`` limits the
declared capabilities (names of :class:`Capability` members, lower case); ``agents=N``.
"""

from __future__ import annotations

import json
import os
import signal as signals
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from ..backend import Backend, Capability, Mount, TaskQuery
from ..errors import (
    BackendError,
    NotFoundError,
    TimeoutExpired,
    UnreachableError,
    UnsupportedError,
    UsageError,
)
from ..model import (
    TERMINAL_STATES,
    Agent,
    Event,
    FileEntry,
    OutputChunk,
    Resources,
    RunSpec,
    StateChange,
    Task,
    TaskState,
    TaskStats,
)

ALL_CAPS = frozenset(
    {
        Capability.TASKS,
        Capability.RUN,
        Capability.KILL,
        Capability.SIGNAL,
        Capability.ATTACH,
        Capability.FILES,
        Capability.FOLLOW,
        Capability.STATS,
        Capability.AGENTS,
        Capability.EVENTS,
        Capability.IDEMPOTENCY,
    }
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _State(msgspec.Struct):
    seq: int = 0
    next_id: int = 0
    tasks: dict[str, Task] = {}
    output: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    events: list[Event] = []


class FakeBackend(Backend):
    """An in-file fake cluster with deterministic tasks (see the module docstring)."""

    name = "fake"
    capabilities = ALL_CAPS
    options = {
        "state": "path of the JSON state file",
        "fail": "unreachable|backend: make every call fail",
        "caps": "comma-separated capability names to declare",
        "agents": "number of agents (default 2)",
    }

    def __init__(self, mount: Mount) -> None:
        super().__init__(mount)
        opts = mount.options
        default = Path(os.environ.get("DSHELL_STATE_DIR", "/tmp")) / (
            "fake" + mount.target.replace("/", "_") + ".json"
        )
        self.path = Path(opts.get("state") or default)
        if "caps" in opts:
            wanted = {c.strip().upper() for c in opts["caps"].split(",") if c.strip()}
            self.capabilities = frozenset(c for c in Capability if c.name in wanted)  # type: ignore[misc]

    # ---- storage ---------------------------------------------------------------------------

    def _need(self, cap: Capability) -> None:
        if cap not in self.capabilities:
            raise UnsupportedError(self.name, cap.value)

    def _check(self) -> None:
        fail = self.mount.options.get("fail")
        if fail == "unreachable":
            raise UnreachableError(f"fake backend at {self.mount.target} is unreachable")
        if fail:
            raise BackendError(f"fake backend at {self.mount.target} failed")

    @contextmanager
    def _state(self, write: bool = False) -> Iterator[_State]:
        from ..paths import locked

        self._check()
        with locked(self.path.with_name(self.path.name + ".lock"), timeout=10, what="fake state"):
            try:
                state = msgspec.json.decode(self.path.read_bytes(), type=_State)
            except FileNotFoundError:
                state = _State()
            yield state
            if write:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_bytes(msgspec.json.encode(state))
                os.replace(tmp, self.path)

    def _event(self, state: _State, task: Task) -> None:
        state.seq += 1
        state.events.append(Event(seq=state.seq, type="TASK_UPDATED", at=now(), task=task))

    def _move(self, state: _State, task: Task, new: TaskState, reason: str | None = None) -> None:
        task.state = new
        task.history.append(StateChange(state=new.value, at=now(), reason=reason))
        if new in TERMINAL_STATES:
            task.finished_at = now()
        self._event(state, task)

    # ---- required ------------------------------------------------------------------------------

    def list_tasks(self, query: TaskQuery) -> list[Task]:
        with self._state() as st:
            tasks = list(st.tasks.values())
        return [t for t in tasks if query.all or t.state not in TERMINAL_STATES]

    def get_task(self, task_id: str) -> Task:
        with self._state() as st:
            if task_id not in st.tasks:
                raise NotFoundError(f"no task {task_id!r} on {self.mount.target}")
            return st.tasks[task_id]

    def list_agents(self) -> list[Agent]:
        self._check()
        n = int(self.mount.options.get("agents", "2"))
        return [
            Agent(
                id=f"agent-{i}",
                hostname=f"fake{i}.example",
                total=Resources(cpus=4, mem=8192, disk=10240, ports=1000),
                attributes={"rack_id": f"r{i % 2}"},
            )
            for i in range(n)
        ]

    # ---- tasks -----------------------------------------------------------------------------------

    def submit(self, spec: RunSpec) -> list[Task]:
        self._need(Capability.RUN)
        if not spec.command:
            raise UsageError("empty command")
        with self._state(write=True) as st:
            if spec.idempotency_key and spec.idempotency_key in st.keys:
                return [st.tasks[i] for i in st.keys[spec.idempotency_key]]
            made = [self._launch(st, spec, i) for i in range(spec.instances)]
            if spec.idempotency_key:
                st.keys[spec.idempotency_key] = [t.id for t in made]
            return made

    def _launch(self, st: _State, spec: RunSpec, instance: int) -> Task:
        st.next_id += 1
        argv = spec.command if not spec.shell else spec.command[0].split()
        name = spec.name or os.path.basename(argv[0]) if argv else "task"
        task = Task(
            id=f"{name}.{st.next_id:06d}",
            name=name or "task",
            state=TaskState.STAGING,
            command=list(spec.command),
            shell=spec.shell,
            resources=spec.resources,
            labels=dict(spec.labels),
            role=spec.role or "default",
            agent_id=f"agent-{st.next_id % 2}",
            instance=instance if spec.instances > 1 else None,
            created_at=now(),
            history=[StateChange(state="STAGING", at=now())],
        )
        st.tasks[task.id] = task
        self._event(st, task)
        self._move(st, task, TaskState.RUNNING)
        task.started_at = now()
        self._play(st, task, argv)
        return task

    def _play(self, st: _State, task: Task, argv: list[str]) -> None:
        head = argv[0] if argv else ""
        if head == "echo":
            st.output[task.id] = " ".join(argv[1:]) + "\n"
            task.exit_code = 0
            self._move(st, task, TaskState.FINISHED)
        elif head in ("exit", "false"):
            task.exit_code = int(argv[1]) if head == "exit" and len(argv) > 1 else 1
            self._move(st, task, TaskState.FINISHED if task.exit_code == 0 else TaskState.FAILED)
        elif head == "oom":
            task.signal = 9
            self._move(st, task, TaskState.FAILED, "REASON_CONTAINER_LIMITATION_MEMORY")

    def kill(self, task_id: str, *, signal: int | None = None, grace: float | None = None) -> Task:
        self._need(Capability.KILL)
        with self._state(write=True) as st:
            task = st.tasks.get(task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r} on {self.mount.target}")
            if task.state in TERMINAL_STATES:
                return task
            if signal and signal not in (signals.SIGKILL, signals.SIGTERM):
                return task  # other signals are delivered and ignored by fake tasks
            task.signal = signal or signals.SIGTERM
            self._move(st, task, TaskState.KILLED, "REASON_KILLED_BY_USER")
            return task

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        task = self.get_task(task_id)
        if task.state not in TERMINAL_STATES:
            raise TimeoutExpired(f"timed out waiting for {task_id}")
        return task

    def read_output(
        self, task_id: str, *, stream: str = "stdout", offset: int = 0, follow: bool = False
    ) -> Iterator[OutputChunk]:
        with self._state() as st:
            if task_id not in st.tasks:
                raise NotFoundError(f"no task {task_id!r}")
            data = st.output.get(task_id, "").encode() if stream == "stdout" else b""
        if data[offset:]:
            yield OutputChunk(stream, data[offset:], offset)

    def attach(self, task_id: str) -> Iterator[OutputChunk]:
        yield from self.read_output(task_id)

    def list_files(self, task_id: str, path: str) -> list[FileEntry]:
        self.get_task(task_id)
        if path.strip("/"):
            raise NotFoundError(f"{path}: no such directory in the sandbox of {task_id}")
        return [FileEntry(name="stdout", kind="file"), FileEntry(name="stderr", kind="file")]

    def read_file(
        self, task_id: str, path: str, *, offset: int = 0, follow: bool = False
    ) -> Iterator[bytes]:
        name = path.strip("/")
        if name not in ("stdout", "stderr"):
            raise NotFoundError(f"{path}: no such file in the sandbox of {task_id}")
        for chunk in self.read_output(task_id, stream=name, offset=offset):
            yield chunk.data

    def stats(self) -> list[TaskStats]:
        self._need(Capability.STATS)
        return [
            TaskStats(
                task_id=t.id,
                name=t.name,
                agent_id=t.agent_id,
                cpu_percent=1.0,
                rss=10.0,
                allocated=t.resources,
                processes=1,
            )
            for t in self.list_tasks(TaskQuery())
        ]

    def events(self, *, since: int | None = None, follow: bool = True) -> Iterator[Event]:
        with self._state() as st:
            events = [e for e in st.events if since is None or e.seq > since]
        yield from events

    def raw_state(self) -> dict[str, Any]:
        with self._state() as st:
            result: dict[str, Any] = json.loads(msgspec.json.encode(st))
            return result
