"""SSH for dshell: a small paramiko wrapper with secure defaults.

- paramiko is imported lazily (it costs ~120 ms), with its optional ``invoke`` import blocked
  (another ~100 ms measured here; paramiko only uses invoke for ``Match exec`` in ssh_config,
  which dshell never reads).
- Host keys are verified against a known_hosts file (default ``~/.ssh/known_hosts``). An unknown
  host is refused with its SHA256 fingerprint in the message; a changed key is refused too.
  There is no auto-add policy.
- One connection per ``(user, host, port)``, opened on first use and reused (:class:`SshPool`
  is owned by its caller: no module-level state).
- Remote commands are argv lists; every argument is quoted with :func:`shlex.quote` before the
  remote shell sees it.
- Failures map to dshell errors: :class:`~dshell.errors.UnreachableError` for connection,
  host-key and authentication problems.
"""

from __future__ import annotations

import os
import select
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, UnreachableError, UsageError
from . import Completed, FileStat

if TYPE_CHECKING:
    import paramiko

CHUNK = 65536


def _paramiko() -> Any:
    """Import paramiko without its optional ``invoke`` dependency."""
    if "paramiko" not in sys.modules and "invoke" not in sys.modules:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # makes `import invoke` fail fast
        try:
            import paramiko
        finally:
            if sys.modules.get("invoke", 0) is None:
                del sys.modules["invoke"]
        return paramiko
    import paramiko

    return paramiko


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: ``ssh://[user@]host[:port]``."""

    host: str
    port: int = 22
    user: str | None = None

    @classmethod
    def parse(cls, source: str) -> SshTarget:
        """Parse ``ssh://user@host:port``; UsageError naming the problem otherwise."""
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(source)
        if parts.scheme != "ssh":
            raise UsageError(f"{source!r}: expected ssh://[user@]host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"{source!r}: an ssh:// source has no path (ssh://user@host:port)")
        try:
            port = parts.port or 22
        except ValueError as exc:
            raise UsageError(f"{source!r}: bad port") from exc
        if not parts.hostname:
            raise UsageError(f"{source!r}: missing host name")
        user = unquote(parts.username) if parts.username else None
        return cls(host=parts.hostname, port=port, user=user)

    @property
    def known_hosts_name(self) -> str:
        """The host's name as known_hosts writes it (``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:…`` fingerprint of a public key."""
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def quote_argv(argv: list[str]) -> str:
    """One remote command line from argv: every argument quoted for the remote shell."""
    if not argv:
        raise UsageError("empty remote command")
    return " ".join(shlex.quote(a) for a in argv)


class UnknownHostKeyError(UnreachableError):
    """The server's host key is not in known_hosts (refused, never added)."""


class _RejectUnknown:
    """paramiko missing-host-key policy: refuse, naming the key's fingerprint."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKeyError(
            f"host key for {hostname} is not in {self.known_hosts}: "
            f"{key.get_name()} {fingerprint(key)}; refusing to connect",
            hint="check the fingerprint with the cluster's admins, then add the key "
            "(ssh-keyscan) to known_hosts or pass -o known_hosts=PATH",
        )


class RemoteProcess:
    """A running remote command: stream its output, then read its status."""

    def __init__(self, channel: paramiko.Channel, target: SshTarget) -> None:
        self._chan = channel
        self._target = target

    def chunks(self, poll: float = 0.5) -> Iterator[tuple[str, bytes]]:
        """``("stdout"|"stderr", data)`` pairs as they arrive, until the command closes them."""
        chan = self._chan
        fd = chan.fileno()  # a pipe paramiko signals for stdout and stderr alike
        with _mapped(self._target):
            while True:
                select.select([fd], [], [], poll)
                while chan.recv_stderr_ready():
                    yield "stderr", chan.recv_stderr(CHUNK)
                while chan.recv_ready():
                    data = chan.recv(CHUNK)
                    if data:
                        yield "stdout", data
                if chan.eof_received and not (chan.recv_ready() or chan.recv_stderr_ready()):
                    return
                if chan.closed:
                    return

    def write(self, data: bytes) -> None:
        with _mapped(self._target):
            self._chan.sendall(data)

    def close_stdin(self) -> None:
        with _mapped(self._target):
            self._chan.shutdown_write()

    def status(self) -> int:
        """Exit status; 255 (as ssh(1) reports it) when the server sent none (killed by signal)."""
        with _mapped(self._target):
            code = int(self._chan.recv_exit_status())
        return 255 if code < 0 else code

    def close(self) -> None:
        self._chan.close()


@contextmanager
def _mapped(target: SshTarget) -> Iterator[None]:
    """Turn paramiko/socket failures into UnreachableError naming the host."""
    pk = _paramiko()
    try:
        yield
    except (UnreachableError, FileNotFoundError, PermissionError):
        raise  # already mapped, or for the caller to name the path
    except pk.BadHostKeyException as exc:
        raise UnreachableError(
            f"host key for {target} does not match known_hosts: got {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}; "
            "refusing to connect (possible man-in-the-middle)"
        ) from exc
    except pk.AuthenticationException as exc:
        raise UnreachableError(f"ssh {target}: authentication failed ({exc})") from exc
    except (pk.SSHException, EOFError) as exc:
        raise UnreachableError(f"ssh {target}: {exc or type(exc).__name__}") from exc
    except OSError as exc:
        raise UnreachableError(f"ssh {target}: {exc.strerror or exc}") from exc


class SshConnection:
    """One SSH connection, opened lazily, with exec, streaming exec and SFTP reads."""

    def __init__(
        self,
        target: SshTarget,
        *,
        known_hosts: str | None = None,
        identity: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.target = target
        self.known_hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        self.identity = os.path.expanduser(identity) if identity else None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # ---- connection ----------------------------------------------------------------------------

    def client(self) -> paramiko.SSHClient:
        """The connected client (connecting, or reconnecting after a drop, as needed)."""
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if self._client is not None and transport is not None and transport.is_active():
                return self._client
            self._close_locked()
            self._client = self._connect()
            return self._client

    def _connect(self) -> paramiko.SSHClient:
        pk = _paramiko()
        client = pk.SSHClient()
        try:
            if os.path.exists(self.known_hosts):
                client.load_host_keys(self.known_hosts)
            client.set_missing_host_key_policy(_RejectUnknown(self.known_hosts))
            with _mapped(self.target):
                client.connect(
                    self.target.host,
                    port=self.target.port,
                    username=self.target.user,
                    key_filename=self.identity,
                    look_for_keys=self.identity is None,
                    allow_agent=self.identity is None,
                    timeout=self.timeout,
                    banner_timeout=self.timeout,
                    auth_timeout=self.timeout,
                )
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- commands ------------------------------------------------------------------------------

    def start(self, argv: list[str]) -> RemoteProcess:
        """Start ``argv`` (quoted) on the remote host; stream it with :class:`RemoteProcess`."""
        command = quote_argv(argv)
        client = self.client()
        with _mapped(self.target):
            transport = client.get_transport()
            if transport is None:
                raise UnreachableError(f"ssh {self.target}: connection closed")
            chan = transport.open_session(timeout=self.timeout)
            chan.exec_command(command)
        return RemoteProcess(chan, self.target)

    def run(
        self, argv: list[str], *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> Completed:
        """Run ``argv`` to completion; its status and both outputs."""
        proc = self.start(argv)
        try:
            if stdin is not None:
                proc.write(stdin)
            proc.close_stdin()
            out: list[bytes] = []
            err: list[bytes] = []
            deadline = time.monotonic() + timeout
            for stream, data in proc.chunks():
                (out if stream == "stdout" else err).append(data)
                if time.monotonic() > deadline:
                    raise UnreachableError(
                        f"ssh {self.target}: {argv[0]} did not finish in {timeout:g} s"
                    )
            return Completed(proc.status(), b"".join(out), b"".join(err))
        finally:
            proc.close()

    # ---- files (SFTP) --------------------------------------------------------------------------

    def sftp(self) -> paramiko.SFTPClient:
        client = self.client()
        with self._lock:
            if self._sftp is None:
                with _mapped(self.target):
                    self._sftp = client.open_sftp()
            return self._sftp

    def stat(self, path: str) -> FileStat | None:
        """Size and mtime of a remote file, or None if it does not exist."""
        sftp = self.sftp()
        try:
            with _mapped(self.target):
                st = sftp.stat(path)
        except FileNotFoundError:
            return None
        return FileStat(size=int(st.st_size or 0), mtime=float(st.st_mtime or 0))

    def read(self, path: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Up to ``limit`` bytes of a remote file from ``offset``."""
        sftp = self.sftp()
        try:
            with _mapped(self.target), sftp.open(path, "rb") as fh:
                fh.seek(offset)
                data: bytes = fh.read(limit)
                return data
        except FileNotFoundError as exc:
            raise NotFoundError(f"{path}: no such file on {self.target.host}") from exc


class SshPool:
    """Connections by ``(user, host, port)``: one per key, reused. Owned by its caller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: dict[tuple[str | None, str, int], SshConnection] = {}

    def get(
        self,
        target: SshTarget,
        *,
        known_hosts: str | None = None,
        identity: str | None = None,
        timeout: float = 10.0,
    ) -> SshConnection:
        key = (target.user, target.host, target.port)
        with self._lock:
            conn = self._conns.get(key)
            if conn is None:
                conn = SshConnection(
                    target, known_hosts=known_hosts, identity=identity, timeout=timeout
                )
                self._conns[key] = conn
            return conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()
