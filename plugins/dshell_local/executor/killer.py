"""``signal`` and ``sweep``: stopping a task, including the processes that tried to escape.

A process group is not enough to kill a task: a child that calls ``setsid`` leaves it. The sweep
SIGKILLs every pid in the task's cgroups (cgroup v1 has no ``cgroup.kill``) and repeats until
they are empty: a process forked between reading ``cgroup.procs`` and the kill shows up in the
next round. Without cgroups it matches processes by ``DSHELL_TASK_ID`` in their environment
(which a double-forked daemon keeps) plus the task's process group and session.

Rounds run from loop timers, so SIGCHLD keeps being handled (killed children get reaped, which is
what lets their cgroups empty) while a sweep is in progress.
"""

from __future__ import annotations

import os
import signal as _signal
import time
from collections.abc import Callable

from . import procfs
from .loop import Loop
from .protocol import BAD_REQUEST, ProtocolError, SweepResult
from .tasks import Task, TaskManager

_ROUND_S = 0.005
_SWEEP_LIMIT_S = 5.0


def parse_signal(value: int | str) -> int:
    """A signal number from 15, "15", "TERM" or "SIGTERM"."""
    if isinstance(value, int):
        num = value
    elif value.isdigit():
        num = int(value)
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            num = int(_signal.Signals[name])
        except KeyError:
            raise ProtocolError(BAD_REQUEST, f"unknown signal {value!r}") from None
    if num not in _signal.valid_signals() and num != 0:
        raise ProtocolError(BAD_REQUEST, f"invalid signal {value!r}")
    return num


def _leader_alive(mgr: TaskManager, task: Task) -> bool:
    """The task's first process still holds its pid (so its pgid/sid cannot be recycled)."""
    r = task.rec
    if not r.running or r.pid is None:
        return False
    if task.adopted:  # not our child: the pid could be recycled, check the start time
        return procfs.is_same_process(r.pid, r.start_time)
    return True  # our unreaped child: its pid is held until we reap it


def signal_task(mgr: TaskManager, task: Task, sig: int) -> bool:
    """Send ``sig`` to the task's process group; False if the task has already exited."""
    if not _leader_alive(mgr, task):
        return False
    pid = task.rec.pid
    assert pid is not None
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:  # the leader left its group (setpgid): signal it alone
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
    return True


class Sweep:
    """SIGKILL everything of one task, round after round, until nothing is left (bounded)."""

    def __init__(
        self, loop: Loop, mgr: TaskManager, task: Task, done: Callable[[SweepResult], None]
    ) -> None:
        self._loop = loop
        self._mgr = mgr
        self._task = task
        self._done = done
        self._killed: set[int] = set()
        self._deadline = time.monotonic() + _SWEEP_LIMIT_S
        self._spared = {os.getpid(), 1}

    def start(self) -> None:
        self._round()

    def _targets(self) -> set[int]:
        task, mgr = self._task, self._mgr
        if task.cg and mgr.cg:
            pids = mgr.cg.procs(task.cg)
        else:
            pids = set(procfs.pids_with_env("DSHELL_TASK_ID", task.rec.task_id))
            if _leader_alive(mgr, task) and task.rec.pid is not None:
                pids |= _same_session(task.rec.pid)
        return pids - self._spared

    def _round(self) -> None:
        task = self._task
        pids = self._targets()
        if _leader_alive(self._mgr, task) and task.rec.pid is not None:
            pids.add(task.rec.pid)  # until we reap it (a zombie is killed "again", harmlessly)
            try:
                os.killpg(task.rec.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.kill(pid, _signal.SIGKILL)
                self._killed.add(pid)
            except ProcessLookupError:
                continue
        if not pids or time.monotonic() >= self._deadline:
            remaining = len(self._targets()) if pids else 0
            self._done(SweepResult(killed=len(self._killed), remaining=remaining))
            return
        self._loop.call_later(_ROUND_S, self._round)


def _same_session(sid: int) -> set[int]:
    found = set()
    for pid in procfs.all_pids():
        st = procfs.read_stat(pid)
        if st is not None and st.session == sid and st.state != "Z":
            found.add(pid)
    return found
