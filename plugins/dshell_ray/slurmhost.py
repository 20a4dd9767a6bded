"""``fw launch ray --on /hpc``: a Ray cluster as Slurm jobs (a host without services).

Two stages (:mod:`dshell.core.fwjobs` submits them and waits for each):

- ``fw-NAME``: one job, the head — ``python -m dshell_ray.jobnode head`` (GCS, dashboard with
  the job API, raylet); ready when ``/api/gcs_healthz`` answers on the dashboard it announces;
- ``fw-NAME-workers``: ``workers`` tasks, one job array (one task per Ray worker node, so
  ``ps /hpc`` shows each): ``python -m dshell_ray.jobnode worker``, submitted once the head is
  ready, each ready when its dashboard agent's ``/api/local_raylet_healthz`` answers.

Each job picks its own free ports on its node's address and announces them
(:mod:`dshell_ray.jobnode`); the mount is the head's announced dashboard, with the token the
head wrote into the framework's dir: ``.dshell/fw/NAME`` in the jobs' working directory
(the mount's ``workdir`` option, else sbatch's), which every node must see — Slurm's usual
shared filesystem. Resources follow the embedded engine's rule (:class:`dshell_ray.fwkind.Plan`):
each job asks for its node's share of ``--cpus``/``--mem``, and its Ray node takes
``--num-cpus``/``--memory``/``--object-store-memory`` from what Slurm allocated to it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import posixpath
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dshell.errors import NotFoundError, PluginError, UnsupportedError, UsageError
from dshell.frameworks import READY_LABEL, JobHosted, LaunchRequest, service_name
from dshell.model import Endpoint, Resources, RunSpec

from .fwkind import HEAD_OVERHEAD, TOKEN, WORKER_OVERHEAD, Plan, RayKind, workers_service

if TYPE_CHECKING:
    from dshell.backend import Backend
    from dshell.model import Task

DIR = ".dshell/fw"  # the frameworks' dirs, relative to the jobs' working directory
HEAD_READY = "dashboard /api/gcs_healthz"  # both whitelisted by Ray's token authentication
WORKER_READY = "agent_http /api/local_raylet_healthz"
TOKEN_LIMIT = 4096


def framework_dir(name: str) -> str:
    return f"{DIR}/{name}"


def endpoint(announced: Mapping[str, list[Endpoint]], task: str, port_name: str) -> Endpoint:
    for ep in announced.get(task, []):
        if ep.port_name == port_name:
            return ep
    raise NotFoundError(f"Ray framework: {task} has not announced its {port_name!r} port")


def _url(ep: Endpoint) -> str:
    return f"http://[{ep.host}]:{ep.port}" if ":" in ep.host else f"http://{ep.host}:{ep.port}"


class RayOnSlurm(JobHosted):
    """A Ray cluster as Slurm jobs: a head job and a job array of worker nodes."""

    options: ClassVar[dict[str, str]] = {
        **RayKind.options,
        "python": "the Python on the cluster's nodes that has Ray and dshell installed "
        "(default: this shell's own interpreter)",
    }

    def check(self, host: Backend, req: LaunchRequest) -> None:
        unknown = sorted(set(req.options) - set(self.options))
        if unknown:
            raise UsageError(
                f"fw launch ray: no option {unknown[0]!r} (options: {', '.join(self.options)})"
            )
        if host.name != "slurm":
            raise UnsupportedError(
                host.name, "Ray clusters as plain tasks (Slurm hosts only)", "fw launch ray"
            )
        python = req.options.get("python", "")
        if python and not posixpath.isabs(python):
            raise UsageError(f"fw launch ray -o python={python!r}: expected an absolute path")
        Plan(req)
        if not python and self._local(host) and importlib.util.find_spec("ray") is None:
            raise PluginError(
                "fw launch ray: Ray is not installed here", hint=f"pip install '{RayKind.requires}'"
            )

    def jobs(
        self, host: Backend, req: LaunchRequest, announced: Mapping[str, list[Endpoint]]
    ) -> list[RunSpec]:
        plan = Plan(req)
        head, workers = service_name(req.name), workers_service(req.name)
        if head not in announced:
            return [self.head_spec(req, plan)]
        if workers in announced or plan.workers == 0:
            return []
        return [self.workers_spec(req, plan, endpoint(announced, head, "gcs").address)]

    def mount_source(
        self,
        host: Backend,
        req: LaunchRequest,
        announced: Mapping[str, list[Endpoint]],
        tasks: Sequence[Task],
    ) -> tuple[str, dict[str, str]]:
        head = service_name(req.name)
        dashboard = endpoint(announced, head, "dashboard")
        sandbox = next((t.sandbox for t in tasks if t.name == head and t.sandbox), None)
        if not sandbox:
            raise NotFoundError(f"Ray framework {req.name!r}: its head job has no working dir")
        token = posixpath.join(sandbox, framework_dir(req.name), TOKEN)
        return _url(dashboard), {"token_file": self._local_token(host, token)}

    def remove(self, host: Backend, req: LaunchRequest) -> None:
        """The framework's dir (token, head address) in the jobs' working directory."""
        from dshell.core.fwjobs import framework_tasks

        dirs = {
            posixpath.join(t.sandbox, framework_dir(req.name))
            for t in framework_tasks(host, req.name, finished=True)
            if t.sandbox and posixpath.isabs(t.sandbox)
        }
        for path in sorted(dirs):
            if self._local(host):
                shutil.rmtree(path, ignore_errors=True)
            else:
                self._runner(host).run(["rm", "-rf", "--", path])
        copy = _token_copy(host, req.name)
        if copy.parent.name == req.name:
            shutil.rmtree(copy.parent, ignore_errors=True)

    # ---- the jobs ----------------------------------------------------------------------------

    def _command(
        self, req: LaunchRequest, plan: Plan, role: str, overhead: float, *extra: str
    ) -> list[str]:
        """The batch script's one line: ``exec`` the node, so that it *is* the job's batch
        process and Slurm keeps the job COMPLETING until it has stopped Ray (``fw rm`` waits
        for that), instead of ending the job when a shell in between dies of SIGTERM."""
        python = req.options.get("python") or sys.executable
        argv = [
            python,
            "-m",
            "dshell_ray.jobnode",
            role,
            f"--dir={framework_dir(req.name)}",
            f"--overhead={overhead:g}",
            f"--worker-ports={plan.worker_ports}",
            *extra,
        ]
        return ["exec " + shlex.join(argv)]

    def head_spec(self, req: LaunchRequest, plan: Plan) -> RunSpec:
        return RunSpec(  # noqa: S604 - a model field: the batch script's line
            command=self._command(req, plan, "head", HEAD_OVERHEAD),
            shell=True,
            name=service_name(req.name),
            resources=Resources(cpus=plan.cpus, mem=HEAD_OVERHEAD + plan.share, disk=plan.disk),
            labels={READY_LABEL: HEAD_READY},
        )

    def workers_spec(self, req: LaunchRequest, plan: Plan, gcs: str) -> RunSpec:
        return RunSpec(  # noqa: S604 - a model field: the batch script's line
            command=self._command(req, plan, "worker", WORKER_OVERHEAD, f"--gcs={gcs}"),
            shell=True,
            name=workers_service(req.name),
            instances=plan.workers,
            resources=Resources(cpus=plan.cpus, mem=WORKER_OVERHEAD + plan.share, disk=plan.disk),
            labels={READY_LABEL: WORKER_READY},
        )

    # ---- the token -----------------------------------------------------------------------------

    @staticmethod
    def _runner(host: Backend) -> Any:
        runner = getattr(host, "runner", None)
        if runner is None:
            raise UnsupportedError(host.name, "reading files on the cluster", "fw launch ray")
        return runner

    def _local(self, host: Backend) -> bool:
        return host.mount.source in ("", "localhost", "local")

    def _local_token(self, host: Backend, path: str) -> str:
        """The token file as the Ray mount reads it: the file itself on a local Slurm, else
        a 0600 copy in this shell's runtime dir, read from the login node."""
        if self._local(host):
            return path
        data = self._runner(host).read(path, 0, TOKEN_LIMIT)
        copy = _token_copy(host, posixpath.basename(posixpath.dirname(path)))
        copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return str(copy)


def _token_copy(host: Backend, name: str) -> Path:
    """Where a remote cluster's token is copied: RUNTIME/fw-tokens/HOSTHASH/NAME/token."""
    from dshell.paths import runtime_dir

    where = hashlib.sha256(host.mount.source.encode()).hexdigest()[:12]
    return Path(runtime_dir()) / "fw-tokens" / where / name / TOKEN
