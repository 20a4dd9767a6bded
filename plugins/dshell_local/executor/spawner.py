"""Start one task with ``os.posix_spawn`` (vfork+exec in glibc; never ``fork()`` from Python).

The child gets its own session (``setsid``), the sandbox as cwd, exactly the given environment,
stdin from /dev/null and stdout/stderr appended to the given files. The files are opened *in the
child* by spawn file actions, so the executor keeps no fd per task; when a spawn fails, the cause
(missing command, unwritable file, missing sandbox) is diagnosed after the fact, keeping the
successful path at a handful of syscalls.

Where the C library has a chdir spawn action (glibc 2.29+), tasks are spawned through it
(:mod:`.cspawn`): the child changes into the sandbox itself and the GIL is released while the
child runs up to its exec, so several threads can spawn at once. Elsewhere, and for tty tasks,
``os.posix_spawn`` is used: it has no chdir action in Python 3.11, so the spawning thread
chdirs the whole process into the sandbox just before (one such thread at a time); callers go
back to ``/`` after a batch.
"""

from __future__ import annotations

import errno
import os
from typing import Any, NamedTuple

from . import cspawn
from .protocol import SpawnSpec

_OUT_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_OUT_MODE = 0o600  # task output can hold secrets; the sandbox owner can widen it
# Ignored dispositions survive exec: Python ignores SIGPIPE and SIGXFSZ, the executor SIGHUP.
_SIGDEF = cspawn.SIGDEF
_DEFAULT_PATH = "/bin:/usr/bin"  # what execvp uses when PATH is unset


class SpawnError(Exception):
    """A task could not be started; ``errno`` is the cause."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err
        self.message = message


class Spawned(NamedTuple):
    """A started task."""

    pid: int
    master_fd: int | None  # pty master of a tty task (kept by the executor)
    out_fd: int | None  # the stdout file the pty output is copied into


class Spawner:
    """Spawns tasks; caches PATH lookups (invalidated when a cached path stops working)."""

    def __init__(self, child_oom_adj: bytes | None = None, *, use_libc: bool = True) -> None:
        self._which: dict[tuple[str, str], str] = {}
        self._c = cspawn.Spawner(_SIGDEF) if use_libc and cspawn.available() else None
        self._null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # dup2'd: no path lookup
        # When the executor runs with oom_score_adj -1000 (see cgroups.py), children must not
        # inherit it: the original value is written back right after each spawn.
        self._child_oom_adj = child_oom_adj

    @property
    def parallel(self) -> bool:
        """Whether several threads may spawn at once (no process-wide chdir; tty tasks aside)."""
        return self._c is not None

    def spawn(self, spec: SpawnSpec) -> Spawned:
        """Start ``spec`` in its sandbox; raise SpawnError with a clear message on failure."""
        argv = ["/bin/sh", "-c", *spec.argv] if spec.shell else spec.argv
        in_child = self._c is not None and not spec.tty  # the child changes directory
        if not in_child:
            try:
                os.chdir(spec.cwd)
            except OSError as exc:
                raise SpawnError(
                    exc.errno or errno.EIO, f"sandbox {spec.cwd}: {exc.strerror}"
                ) from None
        exe = self._resolve(argv[0], spec.env, spec.cwd)
        try:
            if spec.tty:
                spawned = self._spawn_tty(exe, argv, spec)
            elif in_child:
                spawned = self._spawn_libc(exe, argv, spec)
            else:
                spawned = self._spawn(exe, argv, spec)
        except ValueError as exc:  # an argument posix_spawn refuses (validated, but be sure)
            raise SpawnError(errno.EINVAL, f"cannot execute {exe}: {exc}") from None
        except OSError as exc:
            # a cached lookup may have gone stale: the next spawn looks again
            self._which.pop((argv[0], spec.env.get("PATH", _DEFAULT_PATH)), None)
            raise _diagnose(exc, argv[0], exe, spec) from None
        if self._child_oom_adj is not None:
            _write_oom_adj(spawned.pid, self._child_oom_adj)
        return spawned

    def _stdio(self, spec: SpawnSpec) -> list[tuple[Any, ...]]:
        """The file actions of a plain task: stdin /dev/null, stdout and stderr appended."""
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, self._null, 0),
            (os.POSIX_SPAWN_OPEN, 1, spec.stdout, _OUT_FLAGS, _OUT_MODE),
        ]
        if spec.stderr == spec.stdout:
            actions.append((os.POSIX_SPAWN_DUP2, 1, 2))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 2, spec.stderr, _OUT_FLAGS, _OUT_MODE))
        return actions

    def _spawn_libc(self, exe: str, argv: list[str], spec: SpawnSpec) -> Spawned:
        assert self._c is not None
        pid = self._c.spawn(exe, argv, spec.env, spec.cwd, self._stdio(spec))
        return Spawned(pid, None, None)

    def _spawn(self, exe: str, argv: list[str], spec: SpawnSpec) -> Spawned:
        pid = os.posix_spawn(
            exe, argv, spec.env, file_actions=self._stdio(spec), setsid=True, setsigdef=_SIGDEF,
            setsigmask=(),
        )  # fmt: skip
        return Spawned(pid, None, None)

    def _spawn_tty(self, exe: str, argv: list[str], spec: SpawnSpec) -> Spawned:
        master, slave = os.openpty()
        try:
            # Opened by name in the child *after* setsid, so it becomes the controlling tty.
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, 0, 1),
                (os.POSIX_SPAWN_DUP2, 0, 2),
            ]
            out_fd = os.open(spec.stdout, _OUT_FLAGS | os.O_CLOEXEC, _OUT_MODE)
            try:
                pid = os.posix_spawn(
                    exe, argv, spec.env, file_actions=actions, setsid=True, setsigdef=_SIGDEF,
                    setsigmask=(),
                )  # fmt: skip
            except OSError:
                os.close(out_fd)
                raise
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return Spawned(pid, master, out_fd)

    def _resolve(self, name: str, env: dict[str, str], cwd: str) -> str:
        """execvp's lookup, but in the *task's* PATH (posix_spawnp would use the executor's);
        relative entries are looked up in the sandbox ``cwd``, where the child execs."""
        if "/" in name:
            return name
        path = env.get("PATH", _DEFAULT_PATH)
        key = (name, path)
        cached = self._which.get(key)
        if cached is not None:
            return cached
        cacheable = True
        for d in path.split(":"):
            cacheable = cacheable and d.startswith("/")  # relative entries depend on the cwd
            candidate = os.path.join(d or ".", name)
            seen = os.path.join(cwd, candidate)  # = candidate when it is absolute
            if os.access(seen, os.X_OK) and os.path.isfile(seen):
                if cacheable:
                    self._which[key] = candidate
                return candidate
        raise SpawnError(errno.ENOENT, f"{name}: command not found (PATH={path})")


def _diagnose(exc: OSError, name: str, exe: str, spec: SpawnSpec) -> SpawnError:
    """Turn posix_spawn's bare errno into a message naming what failed."""
    err = exc.errno or errno.EIO
    if not os.path.isdir(spec.cwd):
        return SpawnError(err, f"sandbox {spec.cwd}: {os.strerror(errno.ENOENT)}")
    seen = os.path.join(spec.cwd, exe)  # = exe when it is absolute
    if not os.path.exists(seen):
        return SpawnError(err, f"{name}: {os.strerror(errno.ENOENT)}")
    if err in (errno.EACCES, errno.ENOEXEC) and not os.access(seen, os.X_OK):
        return SpawnError(err, f"{exe}: permission denied (not executable)")
    for what, path in (("stdout", spec.stdout), ("stderr", spec.stderr)):
        try:
            os.close(os.open(path, _OUT_FLAGS | os.O_CLOEXEC, _OUT_MODE))
        except OSError as open_exc:
            reason = open_exc.strerror or os.strerror(err)
            return SpawnError(open_exc.errno or err, f"cannot open {what} {path}: {reason}")
    return SpawnError(err, f"cannot execute {exe}: {os.strerror(err)}")


def _write_oom_adj(pid: int, value: bytes) -> None:
    try:
        fd = os.open(f"/proc/{pid}/oom_score_adj", os.O_WRONLY)
    except FileNotFoundError:  # already gone
        return
    try:
        os.write(fd, value)
    except OSError:  # exited (zombie) in the meantime: nothing left to protect
        pass
    finally:
        os.close(fd)
