"""The task table: launch (batched), reap, record exits, and forget.

Every task the executor knows is a :class:`Task`: its journal record plus runtime handles (its
cgroups, its pty, a pidfd when it was re-adopted). Tasks the executor spawned are its children
and are reaped with ``waitpid(-1)`` on SIGCHLD; as a child subreaper it also reaps the orphans
of task trees, which are simply not in the pid index. Re-adopted tasks (after an executor crash)
are nobody's children here and are watched through pidfds instead.
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable
from typing import TypeVar

from . import procfs
from .cgroups import Cgroups, Remover, TaskCgroup
from .journal import Entry, Exited, Forget, Intent, Journal, Started, TaskRecord
from .loop import Loop
from .placer import Placer
from .protocol import (
    CGROUP_FAILED,
    SPAWN_FAILED,
    ExitedEvent,
    ProtocolError,
    SpawnItem,
    SpawnSpec,
    TaskInfo,
)
from .ptyio import Pty
from .spawner import Spawner, SpawnError
from .validate import validate_spec

log = logging.getLogger("dshell.executor")
T = TypeVar("T")


class Task:
    """One known task: the persisted record and the runtime handles."""

    __slots__ = ("adopted", "cg", "pidfd", "pty", "rec")

    def __init__(self, rec: TaskRecord, cg: TaskCgroup | None) -> None:
        self.rec = rec
        self.cg = cg
        self.pty: Pty | None = None
        self.pidfd: int | None = None
        self.adopted = False

    def info(self) -> TaskInfo:
        r = self.rec
        return TaskInfo(
            r.task_id, r.pid, r.start_time, r.running, r.exit_code, r.signal, r.oom, r.lost,
            r.finished_at,
        )  # fmt: skip


class TaskManager:
    """Owns the task table and everything that changes it."""

    def __init__(
        self,
        loop: Loop,
        cg: Cgroups | None,
        journal: Journal,
        boot_id: str,
        spawner: Spawner,
        emit: Callable[[ExitedEvent], None],
    ) -> None:
        self.loop = loop
        self.cg = cg
        self._journal = journal
        self.boot_id = boot_id
        self._spawner = spawner
        self.emit = emit
        self.tasks: dict[str, Task] = {}
        self._children: dict[int, Task] = {}
        self.remover = Remover(cg) if cg else None
        # v1: tasks are placed and spawned from threads that are not the memory owner; two
        # when the spawner needs no process-wide chdir (see placer.py)
        self._placer = Placer() if cg is not None and not cg.v2 else None
        self._second = Placer() if self._placer is not None and spawner.parallel else None
        for placer in (self._placer, self._second):
            if placer is not None and cg is not None:
                cg.use_thread(placer.tid)
        self._exits: list[tuple[Entry, Task]] = []  # exits not yet journaled (flush_exits)
        # Helper children (COMMAND checks, checkrun.py): pid -> called with the wait status.
        self.helpers: dict[int, Callable[[int], None]] = {}

    # ------------------------------------------------------------ launch

    def spawn_many(self, specs: list[SpawnSpec]) -> list[SpawnItem]:
        """Start tasks not yet known, in order; known ones answer with their existing pid."""
        items: list[SpawnItem | None] = [None] * len(specs)
        fresh: list[tuple[int, SpawnSpec, Task]] = []
        for i, spec in enumerate(specs):
            if spec.task_id in self.tasks:
                continue  # answered below, once this batch's own spawns are done
            try:
                validate_spec(spec)
            except ProtocolError as exc:
                items[i] = _error_item(spec.task_id, exc)
                continue
            cg = self.cg.task_cgroup(spec.task_id, spec.limits) if self.cg else None
            rec = TaskRecord(
                task_id=spec.task_id, sandbox=spec.sandbox or spec.cwd, stdout=spec.stdout,
                tty=spec.tty, cgroups=cg.paths if cg else {},
            )  # fmt: skip
            task = self.tasks[spec.task_id] = Task(rec, cg)
            fresh.append((i, spec, task))
        self._journal.append([Intent(t.rec) for _, _, t in fresh])
        failed = self._place_all(fresh, items)
        entries: list[Entry] = []
        for task in failed:
            if task.cg and self.cg:
                self.cg.remove(task.cg)
            del self.tasks[task.rec.task_id]
            entries.append(Forget(task.rec.task_id))
        for _, _, t in fresh:
            if t.rec.pid is not None:
                entries.append(Started(t.rec.task_id, t.rec.pid, t.rec.start_time or 0))
        self.journal(entries)
        return [
            item or self._existing(spec.task_id) for item, spec in zip(items, specs, strict=True)
        ]

    def _place_all(
        self, fresh: list[tuple[int, SpawnSpec, Task]], items: list[SpawnItem | None]
    ) -> list[Task]:
        """Place and spawn ``fresh``: shared between the two placing threads when there are
        two (tasks alternately, so both halves keep the request order) and no tty task needs
        the process-wide chdir; each thread fills its own entries of ``items``."""
        second = self._second
        if second is None or len(fresh) < 2 or any(spec.tty for _, spec, _ in fresh):
            return self._placed(lambda: self._launch(fresh, items))
        other = second.start(self._at_home(lambda: self._launch(fresh[1::2], items)))
        try:
            failed = self._placed(lambda: self._launch(fresh[0::2], items))
        finally:
            failed_too: list[Task] = Placer.result(other)
        return failed + failed_too

    def _launch(
        self, fresh: list[tuple[int, SpawnSpec, Task]], items: list[SpawnItem | None]
    ) -> list[Task]:
        """Create the cgroups (at home), then enter-spawn-settle each task; return failures."""
        failed: list[Task] = []
        for i, spec, task in fresh:
            if task.cg is None or self.cg is None:
                continue
            try:
                self.cg.create(task.cg, spec.limits)
            except OSError as exc:
                task.cg = None
                items[i] = _cgroup_error(spec.task_id, "create", exc)
        for i, spec, task in fresh:
            if items[i] is not None:
                failed.append(task)
                continue
            try:
                items[i] = self._spawn_one(spec, task)
            except SpawnError as exc:
                items[i] = SpawnItem(spec.task_id, False, error=SPAWN_FAILED,
                                     message=exc.message, errno=exc.errno)  # fmt: skip
                failed.append(task)
            except OSError as exc:  # entering the cgroups failed
                items[i] = _cgroup_error(spec.task_id, "enter", exc)
                failed.append(task)
        return failed

    def _spawn_one(self, spec: SpawnSpec, task: Task) -> SpawnItem:
        if task.cg and self.cg:
            self.cg.enter(task.cg)
        spawned = self._spawner.spawn(spec)
        pid = spawned.pid
        if task.cg and self.cg:
            try:
                self.cg.settle(task.cg, spec.limits)
            except OSError as exc:  # the task runs; its pids/cpu limit may be off by one/unset
                log.error("task %s: setting limits after spawn failed: %s", spec.task_id, exc)
        elif spec.limits.mem_mb is not None:
            _rlimit_memory(pid, spec.limits.mem_mb)
        st = procfs.read_stat(pid)  # a child stays readable (at worst a zombie) until reaped
        task.rec.pid, task.rec.start_time = pid, st.start_time if st else 0
        if spawned.master_fd is not None and spawned.out_fd is not None:
            task.pty = Pty(self.loop, spawned.master_fd, spawned.out_fd)
        self._children[pid] = task
        return SpawnItem(spec.task_id, True, pid=pid, start_time=task.rec.start_time)

    def spawn_helper(self, task: Task, spec: SpawnSpec) -> int:
        """Start a helper process (a COMMAND check) inside a running task's cgroups, placed as
        the task itself was (enter, spawn, go home), so none of it runs outside them. Raises
        SpawnError, or OSError when the cgroups cannot be entered."""

        def place() -> int:
            if task.cg and self.cg:
                self.cg.enter(task.cg)
            return self._spawner.spawn(spec).pid

        return self._placed(place)

    def _placed(self, work: Callable[[], T]) -> T:
        """Run ``work`` (it enters cgroups and spawns) on the placing thread when there is one,
        then go home and leave the sandbox (the cwd is the process's)."""
        then_home = self._at_home(work)
        return self._placer.call(then_home) if self._placer is not None else then_home()

    def _at_home(self, work: Callable[[], T]) -> Callable[[], T]:
        """``work``, then back to the thread's own cgroups and out of any sandbox."""

        def then_home() -> T:
            try:
                return work()
            finally:
                if self.cg:
                    self.cg.leave()
                os.chdir("/")

        return then_home

    def _existing(self, task_id: str) -> SpawnItem:
        task = self.tasks.get(task_id)
        if task is None or task.rec.pid is None:  # a duplicate of a failed spawn in this batch
            return SpawnItem(task_id, False, error=SPAWN_FAILED, message="spawn failed")
        r = task.rec
        return SpawnItem(task_id, True, pid=r.pid, start_time=r.start_time, existing=True)

    def journal(self, entries: list[Entry]) -> None:
        """Append to the journal, compacting it when the log has grown long."""
        self._journal.append(entries)
        if self._journal.needs_compaction(len(self.tasks)):
            self._journal.compact(self.boot_id, {t: k.rec for t, k in self.tasks.items()})

    # ------------------------------------------------------------ exits

    def reap(self) -> None:
        """Collect every exited child; record the ones that are tasks."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            task = self._children.pop(pid, None)
            if task is None:
                helper = self.helpers.pop(pid, None)
                if helper is not None:
                    helper(status)
                continue  # else an orphan of some task tree, re-parented to us (subreaper)
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                self.finish(task, None, -code)
            else:
                self.finish(task, code, None)
        self.flush_exits()

    def flush_exits(self) -> None:
        """Journal the exits recorded since the last call (one write), then send their events:
        an exit the engine hears of is always in the journal first."""
        if self._exits:
            exits, self._exits = self._exits, []
            self.journal([entry for entry, _ in exits])
            for _, task in exits:
                self.emit(self.event(task))

    def finish(
        self, task: Task, exit_code: int | None, sig: int | None, lost: bool = False
    ) -> None:
        """Record an exit; it is journaled, then announced, by ``flush_exits``."""
        r = task.rec
        if not r.running:
            return
        r.running, r.exit_code, r.signal, r.lost = False, exit_code, sig, lost
        # OOM comes from the kernel's counter, never from "SIGKILL + a limit": a task killed
        # from outside has oom_kill 0. A clean exit 0 skips the read (the common, fast path).
        failed = exit_code != 0
        r.oom = bool(failed and task.cg and self.cg and self.cg.oom_kills(task.cg) > 0)
        r.finished_at = procfs.now_rfc3339()
        if task.pty:
            task.pty.drain()
            task.pty = None
        # journaled and announced by flush_exits (end of this reap, or of the loop round)
        self._exits.append((Exited(r.task_id, exit_code, sig, r.oom, lost, r.finished_at), task))
        if lost:
            self.flush_exits()

    @staticmethod
    def event(task: Task) -> ExitedEvent:
        r = task.rec
        return ExitedEvent(
            r.task_id, r.pid, r.exit_code, r.signal, r.oom, r.lost, r.finished_at or ""
        )

    # ------------------------------------------------------------ forget

    def ack(self, task_ids: list[str]) -> tuple[list[str], list[str]]:
        """Forget exited tasks and remove their cgroups; returns (forgotten, still running)."""
        forgotten, running = [], []
        entries: list[Entry] = []
        for tid in task_ids:
            task = self.tasks.get(tid)
            if task is None:
                continue
            if task.rec.running:
                running.append(tid)
                continue
            if task.cg and self.cg and self.remover:
                self._kill_leftovers(task)
                self.remover.submit(task.cg)
            del self.tasks[tid]
            forgotten.append(tid)
            entries.append(Forget(tid))
        self.journal(entries)
        return forgotten, running

    def _kill_leftovers(self, task: Task) -> None:
        """Kill what is left in an acked task's cgroups (a forgotten task's processes would be
        unmanaged; its ports must be free once ack returns). One read when empty."""
        assert self.cg is not None and task.cg is not None
        for pid in self.cg.procs(task.cg, first_only=True) - {os.getpid()}:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def running_count(self) -> int:
        return sum(1 for t in self.tasks.values() if t.rec.running)

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)


def _error_item(task_id: str, exc: ProtocolError) -> SpawnItem:
    return SpawnItem(task_id, False, error=exc.code, message=exc.message, errno=exc.errno)


def _cgroup_error(task_id: str, what: str, exc: OSError) -> SpawnItem:
    msg = f"cgroup {what} failed: {exc.strerror or exc}"
    return SpawnItem(task_id, False, error=CGROUP_FAILED, message=msg, errno=exc.errno)


def _rlimit_memory(pid: int, mem_mb: float) -> None:
    """rlimit fallback: RLIMIT_AS on the child, just after exec (posix_spawn cannot set it
    before; the window is the few microseconds until this call, and children forked in it
    keep the executor's limit)."""
    limit = int(mem_mb * 1024 * 1024)
    try:
        resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
    except (ProcessLookupError, PermissionError, ValueError) as exc:
        log.warning("pid %d: RLIMIT_AS not set: %s", pid, exc)
