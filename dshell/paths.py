"""Where dshell keeps its files (XDG), each overridable by an environment variable.

- config (mount table, engine config): ``$DSHELL_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/dshell``
- state (history, engine database, sandboxes, logs): ``$DSHELL_STATE_DIR`` or
  ``$XDG_STATE_HOME/dshell``
- runtime (sockets, kept short: Unix socket paths are limited to ~108 bytes):
  ``$DSHELL_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/dshell``, else ``/tmp/dshell-<uid>``

Every function reads the environment when called (no module state), so tests that set the
variables get their own directories.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from . import xdg
from .errors import ConfigError


def config_dir() -> Path:
    return Path(xdg.config_home())


def state_dir() -> Path:
    return Path(xdg.state_home())


def runtime_dir(create: bool = True) -> Path:
    """The private runtime directory (mode 0700, owned by us), created on demand."""
    path = Path(xdg.runtime_home())
    if create:
        ensure_private_dir(path)
    return path


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700; refuse one owned by someone else or open to others."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ConfigError(f"{path}: not a directory owned by uid {os.getuid()}; refusing to use it")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = 30.0, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) for the block.

    Used for the small files dshell rewrites atomically (the mount table, the Slurm caches).
    The standard library's ``fcntl`` is enough here and costs nothing at start-up (the
    ``filelock`` package took ~25 ms of every command that touched a locked file). With a
    ``timeout``, waiting longer is a ``ConfigError`` naming the file (``what`` says whose);
    ``None`` waits for as long as it takes.
    """
    import fcntl
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ConfigError(
                            f"{path}: still locked by another dshell after {timeout:g} s"
                            + (f" ({what})" if what else "")
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
