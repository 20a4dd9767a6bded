"""The thread that moves into a task's cgroups to spawn it (cgroup v1).

A child inherits the cgroups of the *thread* that forks it, so the executor places a task by
moving one thread into the task's groups and spawning from there (see :mod:`.cgroups`). That
thread used to be the main one, which is also the process's memory owner (``mm->owner``, the
thread-group leader): while it sat in a task's memory cgroup, every page the executor touched —
its heap, its journal's page cache — was charged to that task (and kept the task's group alive
in the kernel after its removal), and the task's OOM killer could pick the executor, so the
executor had to leave the memory group right after each spawn (one more move per task). Moved
here, a thread that is not the leader: the executor's memory stays charged at home, the OOM
killer (which walks thread-group leaders) never sees the executor in a task's group, and the
early move out of the memory group is not needed.

The main thread hands a batch to this thread and waits for it (it does nothing else
meanwhile). Where the spawner needs no process-wide chdir (:mod:`.cspawn`), two placing
threads share a batch: each spawn waits ~400 µs for its child's exec with the GIL released,
and the other thread places its next task meanwhile. The journal is still written by the main
thread only, before and after the batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Placer:
    """A thread running the calls it is handed, one at a time, for a caller that waits."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]]
        self._jobs = queue.SimpleQueue()
        started = threading.Event()
        self.tid = 0
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="placer", daemon=True
        )
        self._thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        self.tid = threading.get_native_id()
        started.set()
        while True:  # a daemon thread: it ends with the executor
            call, box, done = self._jobs.get()
            try:
                box.append((True, call()))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller, raised there
                box.append((False, exc))
            done.set()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the placing thread and return its result (or raise its exception)."""
        return self.result(self.start(fn))

    def start(self, fn: Callable[[], T]) -> tuple[list[tuple[bool, Any]], threading.Event]:
        """Hand ``fn`` to the placing thread; ``result`` waits for it."""
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        return box, done

    @staticmethod
    def result(job: tuple[list[tuple[bool, Any]], threading.Event]) -> Any:
        """What the job ``start`` returned gave back (or raise its exception), once done."""
        box, done = job
        done.wait()
        ok, value = box[0]
        if ok:
            return value
        raise value
