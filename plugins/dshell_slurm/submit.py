"""RunSpec → sbatch command line (pure functions; nothing here runs anything).

Mapping (generic ``run`` parameter → sbatch):

=====================  =========================================================
command (argv)         ``--wrap`` with the argv quoted for the batch shell
``--shell STRING``     the batch script itself, fed on stdin
resources.cpus / mem   ``--cpus-per-task`` (rounded up, ≥1) / ``--mem=NM``
resources.disk / gpus  ``--tmp=NM`` / ``--gpus=N``
instances N            ``--array=0-(N-1)``: one task per array index
constraints            features → ``--constraint``; hostname IS/UNLIKE →
                       ``--nodelist`` / ``--exclude``
after                  ``--dependency=afterok:ID[:ID…]``
partition              ``--partition`` (else the mount's ``partition`` option)
labels                 ``--comment`` (read back by :mod:`dshell_slurm.parse`)
env                    exported in the batch script
workdir                ``--chdir`` (else the mount's ``workdir`` option)
=====================  =========================================================

Output goes to ``dshell-%j.out`` / ``dshell-%j.err`` (arrays: ``dshell-%A_%a.*``) in the job's
working directory, so stdout and stderr stay separate streams.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass

from dshell.backend import Capability
from dshell.errors import BackendError, UnsupportedError, UsageError
from dshell.model import Constraint, RunSpec

from .parse import labels_comment

JOB_ID = re.compile(r"^\d+(_\d+)?$")
_FEATURE = re.compile(r"^[A-Za-z0-9_.\-]+(\|[A-Za-z0-9_.\-]+)*$")
_NODES = re.compile(r"^[A-Za-z0-9_.\-\[\],]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FEATURE_FIELDS = {"feature", "features", "constraint"}


@dataclass(frozen=True)
class Defaults:
    """Mount-level defaults for submissions."""

    partition: str | None = None
    account: str | None = None
    workdir: str | None = None


def job_name(spec: RunSpec) -> str:
    """The job name: ``--name``, else the command's basename."""
    if spec.name:
        return spec.name
    words = spec.command[0].split() if spec.shell and spec.command else spec.command
    return os.path.basename(words[0]) if words and words[0] else "dshell"


def constraint_args(constraints: list[Constraint]) -> list[str]:
    """Generic constraints → ``--constraint`` / ``--nodelist`` / ``--exclude``."""
    features: list[str] = []
    include: list[str] = []
    exclude: list[str] = []
    for c in constraints:
        op, value = c.operator.upper(), c.value or ""
        if c.field == "hostname" and op in ("IS", "LIKE", "CLUSTER") and _NODES.match(value):
            include.append(value)
        elif c.field == "hostname" and op == "UNLIKE" and _NODES.match(value):
            exclude.append(value)
        elif c.field != "hostname" and op in ("IS", "LIKE", "CLUSTER") and _FEATURE.match(value):
            features.append(f"[{value}]" if "|" in value else value)
        else:
            raise UsageError(
                f"constraint {c.field}:{c.operator}{':' + value if value else ''} cannot be "
                "expressed in Slurm (features: FIELD:IS:FEATURE or FIELD:LIKE:a|b; "
                "hostname:IS:NODES, hostname:UNLIKE:NODES)"
            )
    args = []
    if features:
        args.append("--constraint=" + "&".join(features))
    if include:
        args.append("--nodelist=" + ",".join(include))
    if exclude:
        args.append("--exclude=" + ",".join(exclude))
    return args


def resource_args(spec: RunSpec) -> list[str]:
    res = spec.resources
    args = [f"--cpus-per-task={max(1, math.ceil(res.cpus))}"]
    if res.mem > 0:
        args.append(f"--mem={math.ceil(res.mem)}M")
    if res.disk > 0:
        args.append(f"--tmp={math.ceil(res.disk)}M")
    if res.gpus > 0:
        args.append(f"--gpus={math.ceil(res.gpus)}")
    return args


def _check(spec: RunSpec) -> None:
    if not spec.command or not spec.command[0]:
        raise UsageError("run: empty command")
    if spec.ports:
        raise UsageError("run --port: Slurm does not allocate ports to jobs")
    if spec.volumes:
        raise UnsupportedError("slurm", Capability.VOLUMES.value, "run --volume")
    if spec.processes is not None:
        raise UnsupportedError("slurm", "multi-process (Thermos) tasks", "run -f")
    for ref in spec.after:
        if not JOB_ID.match(ref):
            raise UsageError(f"run --after {ref!r}: not a Slurm job id (1234 or 1234_5)")
    for key in spec.env:
        if not _ENV_NAME.match(key):
            raise UsageError(f"run --env {key!r}: not a valid environment variable name")


def batch_script(spec: RunSpec) -> str:
    """The batch script for a ``--shell`` string (env exported first)."""
    lines = ["#!/bin/sh"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(spec.env.items())]
    lines.append(spec.command[0])
    return "\n".join(lines) + "\n"


def wrap_command(spec: RunSpec) -> str:
    """The ``--wrap`` line for an argv command: each argument quoted for the batch shell."""
    env = [f"{k}={v}" for k, v in sorted(spec.env.items())]
    return shlex.join(["env", *env, *spec.command] if env else spec.command)


def sbatch_args(spec: RunSpec, defaults: Defaults) -> tuple[list[str], bytes | None]:
    """(argv, stdin) of the sbatch call that launches ``spec``; UsageError if inexpressible."""
    _check(spec)
    array = spec.instances > 1
    pattern = "dshell-%A_%a" if array else "dshell-%j"
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name={job_name(spec)}",
        f"--output={pattern}.out",
        f"--error={pattern}.err",
        *resource_args(spec),
        *constraint_args(spec.constraints),
    ]
    if array:
        argv.append(f"--array=0-{spec.instances - 1}")
    partition = spec.partition or defaults.partition
    if partition:
        argv.append(f"--partition={partition}")
    if defaults.account:
        argv.append(f"--account={defaults.account}")
    workdir = spec.workdir or defaults.workdir
    if workdir:
        argv.append(f"--chdir={workdir}")
    if spec.after:
        argv.append("--dependency=afterok:" + ":".join(spec.after))
    if spec.labels:
        argv.append("--comment=" + labels_comment(spec.labels))
    if spec.shell:
        return argv, batch_script(spec).encode()
    return [*argv, f"--wrap={wrap_command(spec)}"], None


def parse_sbatch(output: str) -> str:
    """``sbatch --parsable`` prints ``ID`` or ``ID;cluster``; the job id."""
    line = output.strip().splitlines()[-1] if output.strip() else ""
    job = line.split(";", 1)[0].strip()
    if not job.isdigit():
        raise BackendError(f"sbatch printed no job id: {output.strip()!r}")
    return job
