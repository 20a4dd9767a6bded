"""Terminal plumbing for `run -it` and `exec -it`: raw mode, stdin → task, output → screen."""

from __future__ import annotations

import os
import select
import signal
import sys
import termios
import tty as ttymod
from typing import TYPE_CHECKING

from ..backend import Capability, require
from ..errors import UsageError

if TYPE_CHECKING:
    from ..backend import ExecHandle, Mount
    from ..model import RunSpec
    from ..session import Session


def run_tty(session: Session, mount: Mount, spec: RunSpec) -> int:
    """An interactive task: launched, then driven like `exec -it` through the backend."""
    backend = session.backend(mount)
    require(backend, Capability.TTY, "run -it")
    opener = getattr(backend, "run_interactive", None)
    if opener is None:
        raise UsageError(f"backend {backend.name!r} cannot attach a terminal to a new task")
    return pump_tty(session, opener(spec), tty=True)


def pump_tty(session: Session, handle: ExecHandle, *, tty: bool) -> int:
    """Copy our stdin to the handle and its output to our stdout until it ends."""
    import threading

    fd = sys.stdin.fileno()
    is_tty = os.isatty(fd)
    saved = termios.tcgetattr(fd) if (tty and is_tty) else None

    def resize(*_: object) -> None:
        size = os.get_terminal_size(fd) if is_tty else os.terminal_size((80, 24))
        handle.resize(size.lines, size.columns)

    def feed() -> None:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if done.is_set():
                return
            if ready:
                data = os.read(fd, 4096)
                handle.write_stdin(data)
                if not data:
                    return

    done = threading.Event()
    old_winch = signal.signal(signal.SIGWINCH, resize) if is_tty else None
    try:
        if saved is not None:
            ttymod.setraw(fd)
        resize()
        threading.Thread(target=feed, daemon=True).start()
        out = sys.stdout.buffer
        for chunk in handle.chunks():
            out.write(chunk.data)
            out.flush()
        return handle.status()
    finally:
        done.set()
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        handle.close()
        session.attached = True
