"""glibc's ``posix_spawn`` called through ctypes, for two things ``os.posix_spawn`` lacks.

- ``os.posix_spawn`` holds the GIL while the child runs up to its ``exec`` (vfork: the parent
  waits for it; ~400 µs of a task's ~1 ms placement here), so no other thread of the executor
  runs meanwhile. A ctypes call releases the GIL.
- Python 3.11 has no chdir spawn action, so the spawning thread chdirs the whole process into the
  sandbox first, and only one thread can spawn at a time. glibc (2.29+) has
  ``posix_spawn_file_actions_addchdir_np``: the child changes directory itself.

Together they let two placing threads spawn at once (see :mod:`.tasks`). ``available()`` is
False where the C library lacks the chdir action (musl before 1.1.24, other libcs); the
spawner then keeps ``os.posix_spawn``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# glibc's flag values (bits/spawn.h)
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
# posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on x86_64/aarch64 glibc,
# sigset_t 128: generous buffers, so a larger layout elsewhere cannot overflow them
_OPAQUE = 1024

_c_p = ctypes.c_void_p
# os.posix_spawn's file actions: (POSIX_SPAWN_OPEN, fd, path, flags, mode), (POSIX_SPAWN_DUP2,
# fd, new_fd); POSIX_SPAWN_CLOSE is not used here
Actions = Sequence[tuple[Any, ...]]


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        chdir = libc.posix_spawn_file_actions_addchdir_np
    except (OSError, AttributeError):
        return None
    for fn in (
        libc.posix_spawn_file_actions_init,
        libc.posix_spawn_file_actions_destroy,
        libc.posix_spawnattr_init,
        libc.posix_spawnattr_destroy,
        libc.sigemptyset,
    ):
        fn.argtypes = [_c_p]
    chdir.argtypes = [_c_p, ctypes.c_char_p]
    libc.posix_spawn_file_actions_adddup2.argtypes = [_c_p, ctypes.c_int, ctypes.c_int]
    libc.posix_spawn_file_actions_addopen.argtypes = [
        _c_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
    ]  # fmt: skip
    libc.posix_spawnattr_setflags.argtypes = [_c_p, ctypes.c_short]
    libc.posix_spawnattr_setsigmask.argtypes = [_c_p, _c_p]
    libc.posix_spawnattr_setsigdefault.argtypes = [_c_p, _c_p]
    libc.sigaddset.argtypes = [_c_p, ctypes.c_int]
    libc.posix_spawn.argtypes = [
        ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, _c_p, _c_p,
        ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
    ]  # fmt: skip
    return libc


@functools.cache
def _libc() -> ctypes.CDLL | None:
    return _load()


def available() -> bool:
    """Whether spawning through the C library (with its chdir action) is possible here."""
    return _libc() is not None


def _sigset(libc: ctypes.CDLL, signals: Iterable[int]) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(_OPAQUE)
    libc.sigemptyset(buf)
    for sig in signals:
        libc.sigaddset(buf, sig)
    return buf


def _check(rc: int, what: str) -> None:
    if rc:
        raise OSError(rc, f"{what}: {os.strerror(rc)}")


class Spawner:
    """Spawns like ``os.posix_spawn(..., setsid=True, setsigdef=SIGDEF, setsigmask=())`` with
    stdin from ``null_fd`` and the child's own cwd; one instance serves every thread."""

    def __init__(self, sigdef: Iterable[int]) -> None:
        libc = _libc()
        if libc is None:
            raise OSError("posix_spawn_file_actions_addchdir_np is not available")
        self._libc = libc
        self._sigdef = _sigset(libc, sigdef)
        self._nomask = _sigset(libc, ())

    def spawn(
        self, exe: str, argv: list[str], env: Mapping[str, str], cwd: str, file_actions: Actions
    ) -> int:
        """Start ``exe`` in ``cwd``; ``file_actions`` as ``os.posix_spawn`` takes them
        (``POSIX_SPAWN_OPEN`` and ``POSIX_SPAWN_DUP2``), done after the chdir. Raises OSError
        with posix_spawn's error."""
        libc = self._libc
        actions = ctypes.create_string_buffer(_OPAQUE)
        attr = ctypes.create_string_buffer(_OPAQUE)
        _check(libc.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init")
        try:
            _check(libc.posix_spawnattr_init(attr), "posix_spawnattr_init")
            try:
                _check(libc.posix_spawn_file_actions_addchdir_np(actions, os.fsencode(cwd)), cwd)
                for action in file_actions:
                    if action[0] == os.POSIX_SPAWN_OPEN:
                        _, fd, path, oflag, mode = action
                        rc = libc.posix_spawn_file_actions_addopen(
                            actions, fd, os.fsencode(path), oflag, mode
                        )
                        _check(rc, str(path))
                    else:  # POSIX_SPAWN_DUP2
                        _, src, dst = action
                        _check(libc.posix_spawn_file_actions_adddup2(actions, src, dst), "dup2")
                flags = _SETSID | _SETSIGDEF | _SETSIGMASK
                _check(libc.posix_spawnattr_setflags(attr, flags), "posix_spawnattr_setflags")
                _check(libc.posix_spawnattr_setsigdefault(attr, self._sigdef), "sigdefault")
                _check(libc.posix_spawnattr_setsigmask(attr, self._nomask), "sigmask")
                args = (ctypes.c_char_p * (len(argv) + 1))(*map(os.fsencode, argv), None)
                envp = (ctypes.c_char_p * (len(env) + 1))(
                    *(os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()), None
                )
                pid = ctypes.c_int()
                exe_b = os.fsencode(exe)
                rc = libc.posix_spawn(ctypes.byref(pid), exe_b, actions, attr, args, envp)
                if rc:
                    raise OSError(rc, os.strerror(rc))
                return pid.value
            finally:
                libc.posix_spawnattr_destroy(attr)
        finally:
            libc.posix_spawn_file_actions_destroy(actions)


SIGDEF = frozenset({signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP})
