"""Durable exit statuses: ``SANDBOX/.dshell/status.json``, written tmp + fsync + rename.

An fsync costs ~0.6 ms on these disks (measured), as much as a spawn, so the writes run on a few
background threads: the event loop keeps spawning and reaping while the disk syncs, and
concurrent fsyncs share ext4 journal commits (group commit: 1 thread ~1,200-1,600 files/s,
4 threads ~1,500-2,700/s measured). The ``exited`` event is sent only once the file is durable
(each finished write comes back through a queue and wakes the loop through its self-pipe).

The threads do file I/O only. They never enter task cgroups: the main thread moves into them by
its thread id (cgroups.py), so these threads' CPU and pids stay in the executor's own groups.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from collections.abc import Callable

import msgspec

log = logging.getLogger("dshell.executor")

STATUS_DIR = ".dshell"
STATUS_FILE = "status.json"


class ExitStatus(msgspec.Struct):
    """The content of a status file (and what a re-adopting executor reads back)."""

    task_id: str
    pid: int | None
    exit_code: int | None
    signal: int | None
    oom: bool
    finished_at: str


_encoder = msgspec.json.Encoder()


def status_path(sandbox: str) -> str:
    """Where a task's status file lives."""
    return os.path.join(sandbox, STATUS_DIR, STATUS_FILE)


def write_status(sandbox: str, status: ExitStatus) -> None:
    """Write the status file atomically and durably (raises OSError)."""
    d = os.path.join(sandbox, STATUS_DIR)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    tmp = os.path.join(d, f".{STATUS_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, _encoder.encode(status) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(d, STATUS_FILE))


def read_status(sandbox: str, task_id: str) -> ExitStatus | None:
    """The status file of ``task_id`` in ``sandbox``, or None (absent, torn, another task's)."""
    try:
        with open(status_path(sandbox), "rb") as f:
            st = msgspec.json.decode(f.read(), type=ExitStatus)
    except (OSError, msgspec.DecodeError):
        return None
    return st if st.task_id == task_id else None


Job = tuple[str, ExitStatus]


class StatusWriter:
    """Threads writing status files; completions come back through ``done()``."""

    def __init__(self, wake: Callable[[], None], threads: int = 4) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[ExitStatus, str | None]] = collections.deque()
        self._wake = wake
        self.pending = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"status-writer-{i}", daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def submit(self, sandbox: str, status: ExitStatus) -> None:
        """Queue a write; its completion shows up in ``done()``."""
        self.pending += 1
        self._jobs.put((sandbox, status))

    def done(self) -> list[tuple[ExitStatus, str | None]]:
        """Finished writes since the last call: (status, error message or None)."""
        out = []
        while self._done:
            out.append(self._done.popleft())
        self.pending -= len(out)
        return out

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            sandbox, status = job
            err = None
            try:
                write_status(sandbox, status)
            except OSError as exc:
                err = f"{status_path(sandbox)}: {exc.strerror or exc}"
            self._done.append((status, err))
            self._wake()

    def stop(self) -> None:
        """Finish queued writes, then end the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=30)
