"""Recovery after an executor crash: rebuild the task table from the journal.

A task the journal says is running is re-adopted when a process with its pid *and* start time is
alive on the same boot; it is then watched through a pidfd (it is no longer our child, so its
exit status cannot be collected). One that is gone is reported ``lost``: an exit the previous
executor saw is in the journal already (it journals exits before announcing them), and nobody
else can know how a process that was not its child ended. A launch that crashed
between its journal ``intent`` and ``started`` lines is looked for in its cgroups (or by
``DSHELL_TASK_ID``): adopted if found, reported lost otherwise, and never started again.
"""

from __future__ import annotations

import logging
import os

from . import procfs
from .cgroups import TaskCgroup
from .journal import TaskRecord
from .tasks import Task, TaskManager

log = logging.getLogger("dshell.executor")


def recover(mgr: TaskManager, records: dict[str, TaskRecord], journal_boot: str | None) -> None:
    """Fill ``mgr`` from journal records; adopt live tasks; settle the others."""
    same_boot = journal_boot == mgr.boot_id
    for rec in records.values():
        cg = TaskCgroup(dict(rec.cgroups)) if rec.cgroups and mgr.cg else None
        task = mgr.tasks[rec.task_id] = Task(rec, cg)
        if not rec.running:
            continue
        if rec.pid is None and same_boot:
            _find_unconfirmed(mgr, task)
        alive = (
            same_boot and rec.pid is not None and procfs.is_same_process(rec.pid, rec.start_time)
        )
        if alive and watch(mgr, task):
            log.info("task %s: re-adopted pid %s", rec.task_id, rec.pid)
            continue
        gone(mgr, task)
    if mgr.cg is not None:
        for tc in mgr.cg.stray_task_dirs(set(mgr.tasks)):
            if not mgr.cg.remove(tc):
                log.warning("stray task cgroup with processes left alone: %s", tc.dirs())


def _find_unconfirmed(mgr: TaskManager, task: Task) -> None:
    """An intent without a pid: find the session leader the spawn may have started."""
    rec = task.rec
    if task.cg and mgr.cg:
        candidates = mgr.cg.procs(task.cg)
    else:
        candidates = set(procfs.pids_with_env("DSHELL_TASK_ID", rec.task_id))
    for pid in sorted(candidates):
        st = procfs.read_stat(pid)
        if st is not None and st.session == pid and st.state != "Z":
            rec.pid, rec.start_time = pid, st.start_time
            log.warning("task %s: unconfirmed launch found running as pid %d", rec.task_id, pid)
            return


def watch(mgr: TaskManager, task: Task) -> bool:
    """Watch a re-adopted task through a pidfd; False when it is already gone."""
    assert task.rec.pid is not None
    try:
        pidfd = os.pidfd_open(task.rec.pid)
    except ProcessLookupError:
        return False
    task.adopted = True
    task.pidfd = pidfd
    mgr.loop.add_reader(pidfd, lambda: _on_pidfd(mgr, task))
    return True


def _on_pidfd(mgr: TaskManager, task: Task) -> None:
    if task.pidfd is not None:
        mgr.loop.remove_reader(task.pidfd)
        os.close(task.pidfd)
        task.pidfd = None
    gone(mgr, task)


def gone(mgr: TaskManager, task: Task) -> None:
    """A task that is not our child has ended, or vanished while no executor ran: ``lost``."""
    log.info("task %s: pid %s ended while not our child; exit status lost", task.rec.task_id,
             task.rec.pid)  # fmt: skip
    mgr.finish(task, None, None, lost=True)
