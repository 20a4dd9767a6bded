"""``run_check``: a COMMAND health check, run by the executor inside a running task's cgroups.

The check is ``/bin/sh -c COMMAND``, started exactly as the task was (the main thread enters the
task's cgroups, posix_spawns, goes home: see cgroups.py), so no instruction of it runs outside
them, and it counts against the task's memory and pids limits as in Mesos, where a command check
runs in the task's container. It gets its own session (hence its own process group), the given
environment and cwd (the engine passes the task's), and /dev/null as stdin, stdout and stderr.

At ``timeout`` its whole process group is SIGKILLed. When the shell ends (by itself or killed),
whatever is still in its group is SIGKILLed too, so a check leaves nothing behind; the answer is
sent once the shell is reaped (the executor reaps every child on SIGCHLD). Killing the group by
the shell's pid after the reap is safe: Linux keeps a pid allocated while a process group of that
id has members, and once it has none the kill finds nobody. A process of the check that left the
group (``setsid``) stays in the task's cgroups, where it is the task's: sweep and ack kill it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from .loop import Loop, Timer
from .protocol import (
    BAD_REQUEST,
    CGROUP_FAILED,
    NOT_FOUND,
    SPAWN_FAILED,
    ProtocolError,
    RunCheckReq,
    RunCheckResult,
    SpawnSpec,
)
from .spawner import SpawnError
from .tasks import TaskManager
from .validate import validate_spec

MAX_TIMEOUT = 24 * 3600.0


class CheckRun:
    """One running check: its shell's pid, the timeout timer, and where the answer goes."""

    __slots__ = ("pid", "reply", "timed_out", "timer")

    def __init__(self, pid: int, reply: Callable[[RunCheckResult], None]) -> None:
        self.pid = pid
        self.reply = reply
        self.timed_out = False
        self.timer: Timer | None = None

    def expire(self) -> None:
        """The timeout: SIGKILL the group (the shell is not reaped yet, so its pgid is ours)."""
        self.timed_out = True
        _kill_group(self.pid)

    def exited(self, status: int) -> None:
        """The shell was reaped: kill what is left of its group, then answer."""
        if self.timer is not None:
            self.timer.cancel()
        _kill_group(self.pid)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            self.reply(RunCheckResult(exit_code=None, signal=-code, timed_out=self.timed_out))
        else:
            self.reply(RunCheckResult(exit_code=code, signal=None, timed_out=self.timed_out))


def start_check(
    loop: Loop, mgr: TaskManager, req: RunCheckReq, reply: Callable[[RunCheckResult], None]
) -> None:
    """Start the check; ``reply`` is called once it has ended. Raises ProtocolError when the
    task is not running or the check cannot be started in it."""
    task = mgr.get(req.task_id)
    if task is None or not task.rec.running:
        raise ProtocolError(NOT_FOUND, f"no running task: {req.task_id}")
    if not req.command.strip():
        raise ProtocolError(BAD_REQUEST, "run_check: command must not be empty")
    if not 0 < req.timeout <= MAX_TIMEOUT:  # NaN fails too
        raise ProtocolError(BAD_REQUEST, f"run_check: timeout must be in (0, {MAX_TIMEOUT:g}]")
    spec = SpawnSpec(
        task_id=req.task_id, argv=["/bin/sh", "-c", req.command], env=req.env, cwd=req.cwd,
        stdout=os.devnull, stderr=os.devnull,
    )  # fmt: skip
    validate_spec(spec)
    try:
        pid = mgr.spawn_helper(task, spec)
    except SpawnError as exc:
        raise ProtocolError(SPAWN_FAILED, f"check: {exc.message}", exc.errno) from None
    except OSError as exc:  # entering the task's cgroups failed (nothing was started)
        msg = f"check: cgroup enter failed: {exc.strerror or exc}"
        raise ProtocolError(CGROUP_FAILED, msg, exc.errno) from None
    run = CheckRun(pid, reply)
    run.timer = loop.call_later(req.timeout, run.expire)
    mgr.helpers[pid] = run.exited


def kill_checks(mgr: TaskManager) -> None:
    """SIGKILL every running check (the executor is stopping: nobody would time them out)."""
    for pid in mgr.helpers:
        _kill_group(pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
