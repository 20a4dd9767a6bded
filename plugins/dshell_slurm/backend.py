"""The Slurm backend: ``mount -t slurm [-o …] localhost|ssh://user@login[:port] /hpc``.

Everything goes through Slurm's own client commands (``squeue`` — listings read only the
columns they need, :mod:`dshell_slurm.columns` — ``squeue``/``sinfo`` ``--json``,
``sbatch``, ``scancel``, ``scontrol``, ``sstat``, ``srun``), run here or on a login node over
SSH (:mod:`dshell_slurm.runner`). Task ids are Slurm job ids: ``1234``, array tasks ``1234_5``.

Finished jobs: squeue shows them for MinJobAge seconds. After that, a cluster with accounting
(``scontrol show config``: AccountingStorageType is not ``accounting_storage/none``) answers
``inspect`` and ``ps -a`` from ``sacct --json`` (:mod:`dshell_slurm.parse_acct`); without it
dshell's own cache (:mod:`dshell_slurm.state`) keeps the jobs it waited for (attached runs,
``wait``).

What Slurm cannot do (services, health checks, volumes, quotas, interactive terminals) is simply
not declared, so the core answers UNSUPPORTED naming the capability.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from dshell.backend import (
    Availability,
    Backend,
    Capability,
    ExecHandle,
    Mount,
    Prefetched,
    TaskQuery,
    seconds_option,
)
from dshell.errors import (
    ConflictError,
    NotFoundError,
    TimeoutExpired,
    UnreachableError,
    UnsupportedError,
    UsageError,
)
from dshell.model import (
    Agent,
    Event,
    FileEntry,
    OutputChunk,
    RunSpec,
    StateChange,
    Task,
    TaskState,
    TaskStats,
)

from . import files
from .client import SlurmClient
from .parse import (
    epoch,
    inum,
    is_active,
    job_state,
    jobs_to_tasks,
    output_paths,
    raw_job_id,
)
from .parse_nodes import job_stats, nodes_to_agents
from .runner import Runner, check_source, is_local
from .state import EventLog, TaskCache, cluster_dir, now
from .submit import JOB_ID, Defaults, job_name, sbatch_args


class SlurmBackend(Backend):
    """A Slurm cluster through its client commands, local or over SSH."""

    name = "slurm"
    capabilities = frozenset(
        {
            Capability.TASKS,
            Capability.RUN,
            Capability.KILL,
            Capability.SIGNAL,
            Capability.ATTACH,
            Capability.EXEC,
            Capability.FILES,
            Capability.FOLLOW,
            Capability.STATS,
            Capability.AGENTS,
            Capability.EVENTS,
            Capability.DRAIN,
            Capability.DEPENDENCIES,
        }
    )
    options: ClassVar[dict[str, str]] = {
        "partition": "default partition for run; ps/nodes show only this partition",
        "account": "account for run; ps shows only this account's jobs",
        "user": "ps shows only this user's jobs",
        "workdir": "working directory of launched jobs (default: sbatch's)",
        "slurm_conf": "SLURM_CONF for the client commands",
        "known_hosts": "known_hosts file for ssh:// sources (default ~/.ssh/known_hosts)",
        "identity": "private key file for ssh:// sources",
        "poll": "seconds between polls when following output or events (default 1)",
        "timeout": "seconds a Slurm command may take (default 60)",
        "history": "with accounting (slurmdbd): how far back ps -a looks in sacct, seconds "
        "(default 86400)",
        "listing": "columns (default: listings read squeue --Format columns) or json (squeue "
        "--json, as inspect does)",
    }

    def __init__(self, mount: Mount) -> None:
        super().__init__(mount)
        opts = mount.options
        self.poll = seconds_option(opts.get("poll", "1"), "poll")
        self.timeout = seconds_option(opts.get("timeout", "60"), "timeout")
        self.history = seconds_option(opts.get("history", "86400"), "history")
        if opts.get("listing", "columns") not in ("columns", "json"):
            raise UsageError(f"mount -o listing={opts['listing']!r}: expected columns or json")
        self.defaults = Defaults(opts.get("partition"), opts.get("account"), opts.get("workdir"))
        self.slurm = SlurmClient(mount, self.timeout)

    # ---- plumbing ----------------------------------------------------------------------------

    @classmethod
    def availability(cls) -> Availability:
        if shutil.which("squeue"):
            return Availability(True)
        if importlib.util.find_spec("paramiko") is not None:
            return Availability(True, "no squeue here: ssh:// login nodes only")
        return Availability(False, "squeue is not on PATH and paramiko is not installed")

    @property
    def runner(self) -> Runner:
        """Where the Slurm commands run (connects an ssh:// mount on first use)."""
        return self.slurm.runner

    def adopt_listing(self, started: Prefetched) -> None:
        """The listing ``squeue`` that ``prefetch_listing`` started: the next listing reads it."""
        self.slurm.adopt(started)

    def close(self) -> None:
        self.slurm.close()

    def _dir(self) -> Path:
        from dshell.paths import state_dir

        return cluster_dir(state_dir(), self.mount.source, self.mount.options.get("slurm_conf"))

    # ---- listing -------------------------------------------------------------------------------

    def list_tasks(self, query: TaskQuery) -> list[Task]:
        jobs = self.slurm.jobs()
        if not query.all:  # Slurm keeps finished jobs for MinJobAge: skip them before parsing
            jobs = [j for j in jobs if is_active(j)]
        tasks = jobs_to_tasks({"jobs": jobs})
        if query.all:  # jobs Slurm no longer keeps: accounting if any, then dshell's cache
            known = {t.id for t in tasks}
            if self.slurm.accounting():
                old = jobs_to_tasks({"jobs": self.slurm.sacct(since=self.history)})
                tasks += [t for t in old if t.id not in known]
                known |= {t.id for t in old}
            tasks += [t for t in TaskCache(self._dir()).all() if t.id not in known]
        if query.states:
            tasks = [t for t in tasks if t.state in query.states]
        return tasks

    def _lookup(self, task_id: str) -> Task:
        """The task with its raw job record: squeue first, then dshell's cache (which knows
        the output files of the jobs it waited for), then accounting (sacct) if the cluster
        has it."""
        if not JOB_ID.match(task_id):
            raise NotFoundError(f"{task_id!r}: not a Slurm job id (1234 or 1234_5)")
        base = task_id.split("_", maxsplit=1)[0]
        try:
            jobs = self.slurm.jobs([task_id], raw=True)
        except NotFoundError:
            jobs = []
        mine = [
            j
            for j in jobs
            if base in (str(inum(j.get("job_id"))), str(inum(j.get("array_job_id"))))
        ]
        for task in jobs_to_tasks({"jobs": mine}, raw=True):
            if task.id == task_id:
                return task
        cached = TaskCache(self._dir()).get(task_id)
        if cached is not None:
            return cached
        if self.slurm.accounting():
            for task in jobs_to_tasks({"jobs": self.slurm.sacct([task_id])}, raw=True):
                if task.id == task_id:
                    return task
        raise NotFoundError(
            f"no job {task_id} on {self.mount.target or self.runner.where}",
            hint=None
            if self.slurm.accounting()
            else "without accounting (slurmdbd) Slurm forgets a job MinJobAge seconds after "
            "it ends; dshell remembers the jobs it waited for",
        )

    def get_task(self, task_id: str) -> Task:
        return self._lookup(task_id)

    def list_agents(self) -> list[Agent]:
        agents = nodes_to_agents(self.slurm.nodes())
        part = self.mount.options.get("partition")
        if part:
            agents = [a for a in agents if part in a.attributes.get("partitions", "").split(",")]
        return agents

    # ---- launching and stopping ------------------------------------------------------------

    def submit(self, spec: RunSpec) -> list[Task]:
        argv, stdin = sbatch_args(spec, self.defaults)
        job = self.slurm.sbatch(argv, stdin)
        created = now()
        many = spec.instances > 1
        return [
            Task(
                id=f"{job}_{i}" if many else job,
                name=job_name(spec),
                state=TaskState.STAGING,
                backend=self.name,
                command=list(spec.command),
                shell=spec.shell,
                resources=spec.resources,
                labels=dict(spec.labels),
                instance=i if many else None,
                created_at=created,
                history=[StateChange(state=TaskState.STAGING.value, at=created)],
            )
            for i in range(spec.instances)
        ]

    def kill(self, task_id: str, *, signal: int | None = None, grace: float | None = None) -> Task:
        """scancel, or ``scancel --signal`` for SIGNAL.

        Slurm runs its own SIGTERM → KillWait → SIGKILL sequence; ``grace`` cannot change the
        cluster's KillWait and is ignored.
        """
        task = self._lookup(task_id)
        if task.state.terminal:
            return task
        self.slurm.scancel(task_id, signal)
        task = self._lookup(task_id)
        if signal is None and task.state.active:
            task.state = TaskState.KILLING
        return task

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self._lookup(task_id)
            if task.state.terminal:
                TaskCache(self._dir()).remember(task)
                return msgspec.structs.replace(task, raw=None)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutExpired(f"timed out waiting for job {task_id} ({task.state})")
            time.sleep(self.poll if left is None else min(self.poll, left))

    # ---- output, files, exec -----------------------------------------------------------------

    def _paths(self, task_id: str) -> tuple[Task, dict[str, str]]:
        task = self._lookup(task_id)
        out, err = output_paths(task.raw or {})
        return task, ({"stdout": out} if out == err else {"stdout": out, "stderr": err})

    def _probe(self, task_id: str) -> tuple[float | None, bool]:
        """(start in epoch seconds or None if it never started, terminal?) from one lookup."""
        task = self._lookup(task_id)
        if task.state == TaskState.STAGING or not task.started_at:
            return None, task.state.terminal
        return epoch(task.started_at), task.state.terminal

    def read_output(
        self, task_id: str, *, stream: str = "stdout", offset: int = 0, follow: bool = False
    ) -> Iterator[OutputChunk]:
        _, paths = self._paths(task_id)
        if stream not in paths:
            return iter(())  # stderr goes to the stdout file for this job
        return files.follow_files(
            self.runner,
            [(stream, paths[stream], offset)],
            follow=follow,
            probe=lambda: self._probe(task_id),
            poll=self.poll,
        )

    def attach(self, task_id: str) -> Iterator[OutputChunk]:
        _, paths = self._paths(task_id)
        return files.follow_files(
            self.runner,
            [(name, path, 0) for name, path in paths.items()],
            follow=True,
            probe=lambda: self._probe(task_id),
            poll=self.poll,
        )

    def list_files(self, task_id: str, path: str) -> list[FileEntry]:
        _, paths = self._paths(task_id)
        if path.strip("/"):
            raise NotFoundError(f"{path}: no such directory for job {task_id} (stdout, stderr)")
        return files.entries(self.runner, paths)

    def read_file(
        self, task_id: str, path: str, *, offset: int = 0, follow: bool = False
    ) -> Iterator[bytes]:
        name = path.strip("/")
        if name not in files.STREAMS:
            raise NotFoundError(f"{path}: no such file for job {task_id} (stdout, stderr)")
        chunks = self.read_output(task_id, stream=name, offset=offset, follow=follow)
        return (chunk.data for chunk in chunks)

    def exec(
        self,
        task_id: str,
        command: list[str],
        *,
        tty: bool = False,
        env: dict[str, str] | None = None,
    ) -> ExecHandle:
        """``srun --jobid=ID --overlap``: a new step inside the job's allocation."""
        if tty:
            raise UnsupportedError(self.name, Capability.TTY.value, "exec -t")
        task = self._lookup(task_id)
        if task.state != TaskState.RUNNING:
            raise ConflictError(f"job {task_id} is {task.state}: exec needs a running job")
        argv = ["srun", f"--jobid={raw_job_id(task.raw or {})}", "--overlap", "--quiet", "--"]
        if env:
            argv += ["env", *(f"{k}={v}" for k, v in sorted(env.items()))]
        proc = self.runner.start([*argv, *command])
        proc.close_stdin()
        return files.SrunExec(proc)

    # ---- usage, events, admin ----------------------------------------------------------------

    def stats(self) -> list[TaskStats]:
        """Allocation of every running job, with usage from sstat where accounting gathers it."""
        running = [
            j for j in self.slurm.jobs() if job_state(j.get("job_state"))[0] == TaskState.RUNNING
        ]
        usage = self.slurm.sstat([str(raw_job_id(j)) for j in running])
        return job_stats(running, usage, time.time())

    def events(self, *, since: int | None = None, follow: bool = True) -> Iterator[Event]:
        """Task changes found by diffing squeue snapshots every ``poll`` seconds.

        The first snapshot is taken at the call (not at the first ``next``), so "from now on"
        (``since=None``) means from this call.
        """
        log = EventLog(self._dir())

        def snapshot() -> int:
            return log.record(jobs_to_tasks({"jobs": self.slurm.jobs()}))

        last = snapshot()
        return self._event_stream(log, snapshot, last if since is None else since, follow)

    def _event_stream(
        self, log: EventLog, snapshot: Callable[[], int], cursor: int, follow: bool
    ) -> Iterator[Event]:
        while True:
            for event in log.after(cursor):
                cursor = event.seq
                yield event
            if not follow:
                return
            time.sleep(self.poll)
            snapshot()

    def admin_call(self, verb: str, **params: Any) -> Any:
        """``drain`` (node=, reason=) and ``undrain`` (node=) via ``scontrol update``."""
        if verb not in ("drain", "undrain"):
            raise UnsupportedError(self.name, f"the {verb!r} operation")
        node = str(params.get("node") or "")
        if verb == "drain" and params.get("grace") is not None:
            raise UnsupportedError(self.name, "drain --grace (Slurm lets running jobs finish)")
        if verb == "drain":
            reason = str(params.get("reason") or "drained by dshell")
            self.slurm.update_node(node, "DRAIN", reason)
        else:
            self.slurm.update_node(node, "RESUME")
        for agent in self.list_agents():
            if agent.id == node:
                return agent
        raise NotFoundError(f"no node {node!r} after {verb}")

    # ---- mount-time validation -------------------------------------------------------------

    def validate_mount(self) -> None:
        """Source scheme, option files, and that ``squeue`` exists where it will run."""
        check_source(self.mount.source, self.mount.options)
        if not is_local(self.mount.source):
            done = self.runner.run(["sh", "-c", "command -v squeue"])
            if done.returncode != 0:
                raise UnreachableError(
                    f"mount -t slurm {self.mount.source}: squeue is not on PATH there"
                )
