"""Exit statuses: ``SANDBOX/.dshell-status.json``, one file written with one ``write`` (no fsync).

Durability is the engine's own (``synchronous=NORMAL``, docs/engine-api.md): a status survives
a crash of the executor and of the engine (the page cache keeps it); an exit in the last
seconds before a power failure or kernel crash may be lost, as the engine's last transactions
may — after one, every task is gone anyway and the boot id says so. An fsync per exit cost
~0.6-1.4 ms on these disks (measured), more than a spawn: it halved launch throughput for a
guarantee the rest of the state does not give.

One metadata operation per exit: the file sits in the sandbox's top directory (no status
directory to make) and is written in place, not as a temporary file renamed (a rename is a
second operation, and on these disks each costs 0.05-1 ms). A reader never mistakes a partial
file for a status: the content is one ``write`` of ~120 bytes, and a file cut short by a crash
between the create and the write does not decode, which reads as "no status" — what a crash
before a rename would have left. Sandboxes from before this layout keep ``.dshell/status.json``,
which the readers still look at.

The writes run on a few background threads, so the event loop keeps spawning and reaping while
the file system works; the ``exited`` event is sent once the file is written (each finished
write comes back through a queue and wakes the loop through its self-pipe).

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

STATUS_FILE = ".dshell-status.json"  # in the sandbox's top directory
LEGACY_STATUS = os.path.join(".dshell", "status.json")  # sandboxes of older versions


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
    return os.path.join(sandbox, STATUS_FILE)


def status_paths(sandbox: str) -> tuple[str, str]:
    """Where to look for a task's status: the current place, then an older version's."""
    return os.path.join(sandbox, STATUS_FILE), os.path.join(sandbox, LEGACY_STATUS)


def write_status(sandbox: str, status: ExitStatus) -> None:
    """Write the status file (raises OSError)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    fd = os.open(status_path(sandbox), flags, 0o600)
    try:
        os.write(fd, _encoder.encode(status) + b"\n")
    finally:
        os.close(fd)


def read_status(sandbox: str, task_id: str) -> ExitStatus | None:
    """The status file of ``task_id`` in ``sandbox``, or None (absent, torn, another task's)."""
    for path in status_paths(sandbox):
        try:
            with open(path, "rb") as f:
                st = msgspec.json.decode(f.read(), type=ExitStatus)
        except FileNotFoundError:
            continue
        except (OSError, msgspec.DecodeError):
            return None
        return st if st.task_id == task_id else None
    return None


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
