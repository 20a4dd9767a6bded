"""Where Slurm's client commands run: here (subprocess) or on a login node (SSH), one interface.

Both runners take argv lists, never shell strings. Locally there is no shell at all; over SSH
each argument is quoted with :func:`shlex.quote` (in :mod:`dshell.net.ssh`) before the remote
shell sees it. Output files are read directly here and over SFTP there.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from dshell.errors import (
    BackendError,
    DshellError,
    NotFoundError,
    UnreachableError,
    UsageError,
)
from dshell.net import Completed, FileStat

from .early import Started, is_local, local_env, spawn

if TYPE_CHECKING:
    from dshell.backend import Prefetched
    from dshell.net.ssh import SshConnection

DEFAULT_TIMEOUT = 60.0
_UNREACHABLE = ("Unable to contact slurm controller", "Connection refused", "Socket timed out")
READ_LIMIT = 1 << 20


class Process(Protocol):
    """A started command whose output is streamed."""

    def chunks(self) -> Iterator[tuple[str, bytes]]: ...
    def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def status(self) -> int: ...
    def close(self) -> None: ...


class Runner(ABC):
    """Runs Slurm commands and reads job output files somewhere."""

    #: Where commands run, for messages: "localhost" or "user@host:port".
    where: str = "localhost"

    def __init__(self, env: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.env = dict(env or {})  # extra environment (SLURM_CONF)
        self.timeout = timeout

    @abstractmethod
    def run(
        self, argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> Completed:
        """Run to completion (bounded by ``timeout``; ``env``: more environment for this
        command only); UnreachableError if it cannot run."""

    @abstractmethod
    def start(self, argv: list[str]) -> Process:
        """Start a command whose output is streamed (``srun`` for exec)."""

    @abstractmethod
    def stat(self, path: str) -> FileStat | None:
        """Size and mtime of a file, or None if it does not exist (yet)."""

    @abstractmethod
    def read(self, path: str, offset: int = 0, limit: int = READ_LIMIT) -> bytes:
        """Up to ``limit`` bytes from ``offset``; NotFoundError if the file does not exist."""

    def adopt(self, started: Prefetched) -> None:
        """Keep a command started early for the ``run`` of the same command; the default
        runs everything itself and closes it."""
        started.close()

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""


# ---- local --------------------------------------------------------------------------------------


class LocalProcess:
    """A local child process with both outputs piped."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise UnreachableError(f"{argv[0]}: cannot run here ({exc.strerror or exc})") from exc

    def chunks(self) -> Iterator[tuple[str, bytes]]:
        proc = self._proc
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        try:
            while sel.get_map():
                for key, _ in sel.select():
                    data = os.read(key.fd, 65536)
                    if data:
                        yield key.data, data
                    else:
                        sel.unregister(key.fileobj)
        finally:
            sel.close()

    def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def close_stdin(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()

    def status(self) -> int:
        code = self._proc.wait()
        return 128 - code if code < 0 else code

    def close(self) -> None:
        self.close_stdin()
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()


class LocalRunner(Runner):
    """The Slurm client commands of this machine."""

    def __init__(self, env: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(env, timeout)
        self._early: list[Started] = []  # commands started early, not yet collected

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return local_env({**self.env, **extra} if extra else self.env)

    def adopt(self, started: Prefetched) -> None:
        if isinstance(started, Started):
            self._early.append(started)
        else:
            started.close()

    def _take(self, argv: list[str], env: dict[str, str]) -> Started | None:
        """The early process of exactly this command in exactly this environment, if any."""
        for started in self._early:
            if started.argv == argv and started.env == env:
                self._early.remove(started)
                return started
        return None

    def run(
        self, argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> Completed:
        whole = self._env(env)
        try:
            early = self._take(argv, whole) if stdin is None and self._early else None
            if early is not None:  # its timeout counts from here
                return Completed(*early.communicate(self.timeout))
            return self._collect(spawn(argv, whole), stdin)
        except FileNotFoundError as exc:
            raise UnreachableError(
                f"{argv[0]}: command not found on PATH (are the Slurm client tools installed?)"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise UnreachableError(f"{argv[0]} did not answer in {self.timeout:g} s") from exc
        except OSError as exc:
            raise UnreachableError(f"{argv[0]}: cannot run ({exc.strerror or exc})") from exc

    def _collect(self, proc: subprocess.Popen[bytes], stdin: bytes | None) -> Completed:
        """Feed, read and reap a started command as :func:`subprocess.run` does (on a timeout
        it is killed)."""
        with proc:  # closes the pipes and reaps the process
            try:
                out, err = proc.communicate(stdin if stdin is not None else b"", self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            except BaseException:
                proc.kill()
                raise
        return Completed(proc.returncode, out, err)

    def close(self) -> None:
        while self._early:
            self._early.pop().close()

    def start(self, argv: list[str]) -> Process:
        return LocalProcess(argv, self._env())

    def stat(self, path: str) -> FileStat | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise NotFoundError(f"{path}: {exc.strerror}") from exc
        return FileStat(size=st.st_size, mtime=st.st_mtime)

    def read(self, path: str, offset: int = 0, limit: int = READ_LIMIT) -> bytes:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{path}: no such file") from exc
        except OSError as exc:
            raise NotFoundError(f"{path}: {exc.strerror}") from exc


# ---- ssh ----------------------------------------------------------------------------------------


class SshRunner(Runner):
    """The Slurm client commands of a login node, over one reused SSH connection."""

    def __init__(
        self,
        conn: SshConnection,
        env: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(env, timeout)
        self.conn = conn
        self.where = str(conn.target)

    def _argv(self, argv: list[str], extra: dict[str, str] | None = None) -> list[str]:
        # The remote sshd rarely accepts client environment; `env` sets it on the command line.
        env = {**self.env, **extra} if extra else self.env
        if not env:
            return argv
        return ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *argv]

    def run(
        self, argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> Completed:
        done = self.conn.run(self._argv(argv, env), stdin=stdin, timeout=self.timeout)
        if done.returncode == 127:
            raise UnreachableError(f"{argv[0]}: command not found on {self.where}")
        return done

    def start(self, argv: list[str]) -> Process:
        return self.conn.start(self._argv(argv))

    def stat(self, path: str) -> FileStat | None:
        try:
            return self.conn.stat(path)
        except PermissionError as exc:
            raise NotFoundError(f"{path}: permission denied on {self.where}") from exc

    def read(self, path: str, offset: int = 0, limit: int = READ_LIMIT) -> bytes:
        try:
            return self.conn.read(path, offset, limit)
        except PermissionError as exc:
            raise NotFoundError(f"{path}: permission denied on {self.where}") from exc

    def close(self) -> None:
        self.conn.close()


def make_runner(
    source: str,
    *,
    env: dict[str, str],
    timeout: float,
    known_hosts: str | None = None,
    identity: str | None = None,
) -> Runner:
    """The runner for a mount source: ``localhost`` or ``ssh://user@host[:port]``."""
    if is_local(source):
        return LocalRunner(env, timeout)
    from dshell.net.ssh import SshConnection, SshTarget

    target = SshTarget.parse(source)
    conn = SshConnection(target, known_hosts=known_hosts, identity=identity, timeout=10.0)
    return SshRunner(conn, env, timeout)


def check_source(source: str, options: dict[str, str]) -> None:
    """Mount-time checks that need no network: the source scheme, option files, local squeue."""
    if not is_local(source) and not source.startswith("ssh://"):
        raise UsageError(
            f"mount -t slurm: bad source {source!r}: expected localhost or "
            "ssh://user@login-host[:port]"
        )
    for key in ("known_hosts", "identity"):
        if options.get(key) and not os.path.isfile(os.path.expanduser(options[key])):
            raise UsageError(f"mount -o {key}={options[key]}: no such file")
    if not is_local(source):
        from dshell.net.ssh import SshTarget

        SshTarget.parse(source)
        return
    if options.get("slurm_conf") and not os.path.isfile(options["slurm_conf"]):
        raise UsageError(f"mount -o slurm_conf={options['slurm_conf']}: no such file")
    if not shutil.which("squeue"):
        raise UnreachableError(
            "mount -t slurm localhost: squeue is not on PATH "
            "(install the Slurm client tools, or mount ssh://user@login-host)"
        )


def failure(argv: list[str], done: Completed, where: str) -> DshellError:
    """The dshell error for a failed Slurm command, carrying Slurm's own message."""
    message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
    if "Invalid job id" in message or "Invalid node name" in message:
        return NotFoundError(f"{argv[0]}: {message}")
    if any(s in message for s in _UNREACHABLE):
        return UnreachableError(f"{argv[0]} on {where}: {message}")
    return BackendError(f"{argv[0]} failed on {where}: {message}")
