"""A minimal single-threaded event loop on ``selectors`` (epoll): fds, timers, a self-pipe.

Why not asyncio: the executor moves its main thread between cgroups around each spawn and must
know that nothing else runs meanwhile; a plain loop makes that obvious, starts faster and keeps
the process smaller (measured in bench/executor.py). Signals arrive through the self-pipe
(``signal.set_wakeup_fd``), so SIGCHLD wakes ``select`` like any fd.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import time
from collections.abc import Callable

Callback = Callable[[], None]


class Timer:
    """A scheduled call; ``cancel()`` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """fd readiness callbacks, timers and a wakeup pipe, one ``run_once`` at a time."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.stopping = False

    def wake(self) -> None:
        """Make the next (or current) ``select`` return; safe from any thread."""
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:  # the pipe is full: a wakeup is pending anyway
            pass

    def drain_wakeups(self) -> None:
        """Empty the self-pipe (its content does not matter: every wakeup rechecks all)."""
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def set_events(self, fd: int, read: Callback | None, write: Callback | None) -> None:
        """Watch ``fd`` for the given callbacks (both None: stop watching it)."""
        mask = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            if mask:
                self._sel.register(fd, mask, (read, write))
            return
        if not mask:
            self._sel.unregister(fd)
        elif key.events != mask or key.data != (read, write):
            self._sel.modify(fd, mask, (read, write))

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is readable."""
        self.set_events(fd, callback, self._writer_of(fd))

    def remove_reader(self, fd: int) -> None:
        self.set_events(fd, None, self._writer_of(fd))

    def _writer_of(self, fd: int) -> Callback | None:
        try:
            return self._sel.get_key(fd).data[1]
        except KeyError:
            return None

    def call_later(self, delay: float, callback: Callback) -> Timer:
        """Run ``callback`` after ``delay`` seconds (from the loop, never re-entrantly)."""
        timer = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def run_once(self, max_wait: float | None) -> None:
        """Wait for fds or the next timer (at most ``max_wait`` s), then run what is due."""
        timeout = max_wait
        if self._timers:
            due = max(0.0, self._timers[0][0] - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        for key, mask in self._sel.select(timeout):
            read, write = key.data
            # an earlier callback of this round may have closed (or replaced) this fd
            if mask & selectors.EVENT_READ and read and self._current(key.fd, read, 0):
                read()
            if mask & selectors.EVENT_WRITE and write and self._current(key.fd, write, 1):
                write()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                timer.callback()

    def _current(self, fd: int, callback: Callback, which: int) -> bool:
        try:
            return self._sel.get_key(fd).data[which] is callback
        except KeyError:
            return False

    def close(self) -> None:
        self._sel.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
