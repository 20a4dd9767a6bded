"""The Ray backend: ``mount -t ray [-o token_file=PATH] http://127.0.0.1:8265 /ray``.

Everything goes through the Ray dashboard's REST API (:mod:`dshell_ray.client`, standard
library only): Ray jobs are the tasks (``ps``, ``run``, ``kill``, ``cat``/``tail -f`` of
their logs), Ray tasks and actors are extra rows of ``ps -a`` (their ``parent_task`` is the
job's submission id), Ray nodes are the agents (``nodes``, ``top``).

- ``run -- CMD`` submits a job whose entrypoint is the argv shell-quoted (``--shell 'STRING'``
  as is); ``--env`` becomes the job's ``runtime_env.env_vars``, ``--cpus``/``--mem``/``--gpus``
  the entrypoint's resources, ``--name`` and ``--label`` its metadata. Attached runs stream the
  job's log and exit with the driver's exit code (a stopped job: 143, as a killed task).
- ``kill`` stops a job (Ray sends SIGTERM, then SIGKILL); ``--signal`` is not supported.
- Logs: Ray keeps one log per job (the driver's stdout and stderr together): it is the task's
  ``stdout``. ``tail -f`` polls ``/api/jobs/{id}/logs`` every ``poll`` seconds and prints
  what is new (the websocket tail would need a client library the CLI does not load).

What Ray's job API cannot do (services, volumes, exec, terminals, signals, events, drain) is
not declared, so the core answers UNSUPPORTED naming the capability.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import ClassVar

from dshell.backend import Backend, Capability, Mount, TaskQuery, seconds_option
from dshell.errors import (
    BackendError,
    NotFoundError,
    TimeoutExpired,
    UnsupportedError,
    UsageError,
)
from dshell.model import (
    Agent,
    FileEntry,
    OutputChunk,
    RunSpec,
    StateChange,
    Task,
    TaskState,
    TaskStats,
)

from .client import RayClient, parse_source, read_token
from .parse import (
    actor_to_task,
    job_output,
    job_parents,
    job_state,
    job_stats,
    job_to_task,
    jobs_to_tasks,
    nodes_to_agents,
    ray_task_to_task,
    state_rows,
    submit_body,
)

_TASK_ID = re.compile(r"^[0-9a-f]{48}$")
_ACTOR_ID = re.compile(r"^[0-9a-f]{32}$")
STREAMS = ("stdout", "stderr")


class RayBackend(Backend):
    """A Ray cluster through its dashboard's job and state APIs."""

    name = "ray"
    capabilities = frozenset(
        {
            Capability.TASKS,
            Capability.RUN,
            Capability.KILL,
            Capability.ATTACH,
            Capability.FILES,
            Capability.FOLLOW,
            Capability.STATS,
            Capability.AGENTS,
        }
    )
    options: ClassVar[dict[str, str]] = {
        "token_file": "file holding the cluster's RAY_AUTH_TOKEN (token authentication)",
        "timeout": "seconds one dashboard request may take (default 10)",
        "poll": "seconds between polls when following logs or waiting (default 0.5)",
    }

    def __init__(self, mount: Mount) -> None:
        super().__init__(mount)
        opts = mount.options
        self.timeout = seconds_option(opts.get("timeout", "10"), "timeout")
        self.poll = seconds_option(opts.get("poll", "0.5"), "poll")
        self._client: RayClient | None = None

    @property
    def client(self) -> RayClient:
        """The dashboard client (source and token checked on first use)."""
        if self._client is None:
            address = parse_source(self.mount.source)
            self._client = RayClient(address, read_token(self.mount.options), self.timeout)
        return self._client

    def validate_mount(self) -> None:
        """The source's form, the token file, and that a Ray dashboard answers there."""
        version = self.client.version()
        if "ray_version" not in version:
            raise UsageError(f"mount -t ray {self.mount.source}: not a Ray dashboard")

    # ---- listing -------------------------------------------------------------------------------

    def list_tasks(self, query: TaskQuery) -> list[Task]:
        jobs = self.client.jobs()
        tasks = jobs_to_tasks(jobs, all_=query.all)
        if query.all:  # Ray tasks and actors, each under the job that runs it
            parents = job_parents(jobs)
            tasks += [ray_task_to_task(r, parents) for r in state_rows(self.client.state("tasks"))]
            tasks += [actor_to_task(r, parents) for r in state_rows(self.client.state("actors"))]
        if query.states:
            tasks = [t for t in tasks if t.state in query.states]
        if query.selector:
            tasks = [
                t for t in tasks if all(t.labels.get(k) == v for k, v in query.selector.items())
            ]
        return tasks

    def get_task(self, task_id: str) -> Task:
        try:
            return job_to_task(self.client.job(task_id), raw=True)
        except NotFoundError:
            pass
        kind = "tasks" if _TASK_ID.match(task_id) else "actors" if _ACTOR_ID.match(task_id) else ""
        if kind:
            key = "task_id" if kind == "tasks" else "actor_id"
            rows = state_rows(self.client.state(kind, **{key: task_id}))
            if rows:
                parents = job_parents(self.client.jobs())
                convert = ray_task_to_task if kind == "tasks" else actor_to_task
                return convert(rows[-1], parents)  # the latest attempt of a retried task
        raise NotFoundError(f"no Ray job, task or actor {task_id!r} at {self.client.url}")

    def list_agents(self) -> list[Agent]:
        nodes = self.client.state("nodes")
        try:
            summary = self.client.node_summary()
        except BackendError:
            summary = None  # usage figures are optional; the node list is not
        return nodes_to_agents(nodes, summary)

    def stats(self) -> list[TaskStats]:
        return job_stats(self.client.jobs(), self.client.node_summary())

    # ---- launching and stopping ------------------------------------------------------------

    def submit(self, spec: RunSpec) -> list[Task]:
        _check_spec(spec)
        tasks: list[Task] = []
        try:
            for _ in range(spec.instances):
                answer = self.client.submit(submit_body(spec))
                job_id = str(answer.get("submission_id") or answer.get("job_id") or "")
                if not job_id:
                    raise BackendError(f"Ray accepted a job without an id: {answer!r}")
                tasks.append(self._staged(job_id, spec))
        except BaseException:
            for task in tasks:  # nothing half-launched: stop the jobs already submitted
                try:
                    self.client.stop(task.id)
                except (BackendError, NotFoundError):
                    pass
            raise
        return tasks

    def _staged(self, job_id: str, spec: RunSpec) -> Task:
        from .parse import rfc3339_ms

        created = rfc3339_ms(time.time() * 1000) or ""
        return Task(
            id=job_id,
            name=spec.name or job_id,
            state=TaskState.STAGING,
            backend=self.name,
            command=list(spec.command),
            shell=spec.shell,
            resources=spec.resources,
            labels=dict(spec.labels),
            env=dict(spec.env),
            created_at=created,
            history=[StateChange(state=TaskState.STAGING.value, at=created)],
        )

    def kill(self, task_id: str, *, signal: int | None = None, grace: float | None = None) -> Task:
        """Stop a job. Ray sends SIGTERM to its entrypoint, then SIGKILL after its own grace
        (``grace`` cannot change it and is ignored)."""
        if signal is not None:
            raise UnsupportedError(self.name, Capability.SIGNAL.value, "kill -s")
        task = self.get_task(task_id)
        if task.labels.get("ray.kind"):
            raise UnsupportedError(
                self.name, "killing Ray tasks and actors (stop their job instead)", "kill"
            )
        if task.state.terminal:
            return task
        self.client.stop(task.id)
        task = self.get_task(task.id)
        if task.state.active:
            task.state = TaskState.KILLING
        return task

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.get_task(task_id)
            if task.state.terminal:
                task.raw = None
                return task
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutExpired(f"timed out waiting for Ray job {task_id} ({task.state})")
            time.sleep(self.poll if left is None else min(self.poll, left))

    # ---- logs -----------------------------------------------------------------------------------

    def _job_id(self, task_id: str) -> str:
        task = self.get_task(task_id)
        if task.labels.get("ray.kind"):
            raise NotFoundError(
                f"{task_id} is a Ray {task.labels['ray.kind']}: only jobs have logs here "
                f"(its job is {task.parent_task})"
            )
        return task.id

    def _logs(self, job_id: str, offset: int, follow: bool) -> Iterator[OutputChunk]:
        """The job's output from byte ``offset``; with ``follow``, polled until the job ends.
        The state is read before the log, so the last read after the end is complete."""
        sent = max(offset, 0)
        while True:
            job = self.client.job(job_id)
            done = job_state(job.get("status")).terminal
            data = job_output(self.client.logs(job_id), job, complete=done).encode()
            if len(data) > sent:
                yield OutputChunk("stdout", data[sent:], sent)
                sent = len(data)
            if done or not follow:
                return
            time.sleep(self.poll)

    def read_output(
        self, task_id: str, *, stream: str = "stdout", offset: int = 0, follow: bool = False
    ) -> Iterator[OutputChunk]:
        job_id = self._job_id(task_id)
        if stream != "stdout":
            return iter(())  # Ray writes the driver's stderr into the one job log
        return self._logs(job_id, offset, follow)

    def attach(self, task_id: str) -> Iterator[OutputChunk]:
        return self._logs(self._job_id(task_id), 0, True)

    def list_files(self, task_id: str, path: str) -> list[FileEntry]:
        job_id = self._job_id(task_id)
        if path.strip("/"):
            raise NotFoundError(f"{path}: no such directory for Ray job {task_id} (stdout)")
        job = self.client.job(job_id)
        done = job_state(job.get("status")).terminal
        size = len(job_output(self.client.logs(job_id), job, complete=done).encode())
        return [FileEntry(name="stdout", kind="file", size=size)]

    def read_file(
        self, task_id: str, path: str, *, offset: int = 0, follow: bool = False
    ) -> Iterator[bytes]:
        name = path.strip("/")
        if name not in STREAMS:
            raise NotFoundError(f"{path}: no such file for Ray job {task_id} (stdout)")
        if name == "stderr":
            raise NotFoundError(
                f"{task_id}/stderr: Ray writes a job's stderr into its log: read "
                f"tasks/{task_id}/stdout"
            )
        chunks = self._logs(self._job_id(task_id), offset, follow)
        return (chunk.data for chunk in chunks)


def _check_spec(spec: RunSpec) -> None:
    """Refuse, before submitting anything, what a Ray job cannot carry (naming the flag)."""
    unsupported = {
        "--port": spec.ports or spec.port_numbers,
        "--constraint": spec.constraints,
        "--volume": spec.volumes,
        "--role": spec.role,
        "--disk": spec.resources.disk > 0,
        "--workdir": spec.workdir,
        "--partition": spec.partition,
        "a multi-process (Thermos) task": spec.processes,
        "Aurora templates": spec.templates,
    }
    for flag, given in unsupported.items():
        if given:
            raise UnsupportedError("ray", f"run {flag}", "run")
