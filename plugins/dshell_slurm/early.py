"""The listing's ``squeue --json``, defined once and startable before dshell has finished starting.

``squeue --json`` is most of what ``dshell ps`` on a Slurm mount waits for (~125 ms with 500
jobs queued), and dshell's own start-up (imports, mount table, backend) is most of the rest.
``prefetch_listing`` (the package's early-listing hook, see "Early listings" in
:mod:`dshell.backend`) starts the command as soon as the fast path knows the mount, and the
backend's :class:`~dshell_slurm.runner.LocalRunner` collects it instead of starting another.

The command, its environment and how it is spawned are defined here only, for both the early
start and the backend's own calls (:mod:`dshell_slurm.client`, :mod:`dshell_slurm.runner`), and
the runner uses an early process only if its argv and environment are exactly the ones it
would run. This module imports nothing heavy at import time (it runs before msgspec does).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess


def is_local(source: str) -> bool:
    """Whether a mount source means this machine's client commands (else ``ssh://…``)."""
    return source in ("", "localhost", "local")


def client_env(options: dict[str, str]) -> dict[str, str]:
    """The environment a mount adds to Slurm's client commands (``slurm_conf``)."""
    return {"SLURM_CONF": options["slurm_conf"]} if options.get("slurm_conf") else {}


def local_env(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a local client command: ours, plus the mount's."""
    return {**os.environ, **extra}


def squeue_argv(options: dict[str, str], job_ids: list[str] | None = None) -> list[str]:
    """``squeue --json`` for a mount's jobs (``job_ids``: only those)."""
    argv = ["squeue", "--json"]
    if options.get("user"):
        argv.append(f"--user={options['user']}")
    if job_ids:
        argv.append("--jobs=" + ",".join(job_ids))
    return argv


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a local client command with every stream piped (OSError if it cannot start)."""
    import subprocess

    pipe = subprocess.PIPE
    return subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=pipe, env=env)


class Started:
    """A client command started early: what was run, and the running process."""

    def __init__(self, argv: list[str], env: dict[str, str], proc: subprocess.Popen[bytes]):
        self.argv = argv
        self.env = env
        self.proc = proc

    def close(self) -> None:
        """Kill it if it still runs (a read-only query: nothing is lost) and reap it."""
        with self.proc as proc:  # closes the pipes and waits
            if proc.poll() is None:
                proc.kill()


def prefetch_listing(source: str, options: dict[str, str]) -> Started | None:
    """Start a local mount's ``squeue --json`` now; None for ssh:// mounts (connecting is the
    expensive part there, and the backend does it) or when it cannot start (the listing then
    runs it again and reports why, as it always has)."""
    if not is_local(source):
        return None
    argv, env = squeue_argv(options), local_env(client_env(options))
    try:
        return Started(argv, env, spawn(argv, env))
    except OSError:
        return None
