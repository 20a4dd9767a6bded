"""The executor side of ``tty`` tasks (a minimal design).

The executor keeps the pty master: it copies everything the task writes into the task's stdout
file, queues ``write_stdin`` data to the task's terminal and applies ``resize``. An engine that
offers ``exec -it`` or ``attach`` tails the stdout file and forwards keystrokes through
``write_stdin``. The copy ends when the last holder of the terminal's slave side exits (EIO).
After an executor restart the master is gone: a re-adopted tty task keeps running but its
terminal output is no longer recorded.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios

from .loop import Loop

_CHUNK = 65536
_MAX_PENDING = 1 << 20  # stdin queued for a task that does not read it


class Pty:
    """A task's pty master, its stdout file and its pending stdin."""

    def __init__(self, loop: Loop, master_fd: int, out_fd: int) -> None:
        self._loop = loop
        self.master = master_fd
        self.out = out_fd
        self._pending = bytearray()
        self.closed = False
        loop.add_reader(master_fd, self.on_readable)

    def on_readable(self) -> None:
        """Copy what the task wrote to its terminal into the stdout file."""
        try:
            data = os.read(self.master, _CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every slave fd is closed, the task is gone
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.close()
            return
        self._copy(data)

    def _copy(self, data: bytes) -> None:
        try:
            os.write(self.out, data)
        except OSError:  # ENOSPC and the like: lose output, never the task
            pass

    def drain(self) -> None:
        """Copy what is left after the task exited, then close."""
        while not self.closed:
            try:
                data = os.read(self.master, _CHUNK)
            except OSError:  # EIO or EAGAIN: nothing more will come
                break
            if not data:
                break
            self._copy(data)
        self.close()

    def write(self, data: bytes) -> int:
        """Queue ``data`` for the task's stdin; returns the number of bytes accepted."""
        if self.closed:
            return 0
        room = _MAX_PENDING - len(self._pending)
        accepted = data[: max(0, room)]
        self._pending += accepted
        self._flush()
        return len(accepted)

    def _flush(self) -> None:
        while self._pending:
            try:
                n = os.write(self.master, self._pending)
            except BlockingIOError:
                break
            except OSError:  # the terminal went away
                self._pending.clear()
                break
            del self._pending[:n]
        if not self.closed:
            self._loop.set_events(
                self.master, self.on_readable, self._flush if self._pending else None
            )

    def resize(self, rows: int, cols: int) -> None:
        """Set the window size (the kernel sends SIGWINCH to the foreground group)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.set_events(self.master, None, None)
        os.close(self.master)
        os.close(self.out)
