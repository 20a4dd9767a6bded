"""The ``zk`` backend: a read-only view of a ZooKeeper tree, e.g. Aurora serversets.

``mount -t zk zk://host:2181[,host:2181…]/aurora /disco`` maps the znodes below ``/aurora``
onto ``/disco``: ``ls /disco/www/prod/hello`` lists a serverset's members (with the endpoint
each one announces), ``cat /disco/www/prod/hello/member_0000000001`` prints a member's JSON.
A znode with children, or without data, is shown as a directory; a leaf with data as a file.

Nothing else is declared (no tasks, runs, agents…), so ``ps /disco`` and the other verbs end
UNSUPPORTED naming the capability. Reading a tree guarded by a digest ACL takes
``-o credentials_file=PATH`` (a file holding ``user:password``; the secret never enters the
mount table). kazoo is imported on first contact; each call waits at most ``-o timeout``
seconds (default 5), and an ensemble that does not answer is UNREACHABLE.
"""

from __future__ import annotations

import importlib.util
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from dshell.backend import Availability, Backend, Capability, Mount, TaskQuery
from dshell.errors import BackendError, NotFoundError, UnreachableError, UsageError
from dshell.model import Agent, FileEntry, Task

from .serverset import MEMBER_PREFIX, decode_member
from .url import ZkTarget, parse_zk_url, split_credentials


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number <= 600:
        raise UsageError(f"mount -o timeout={value!r}: expected seconds in (0, 600]")
    return number


def _iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ZkBackend(Backend):
    """A ZooKeeper tree, read-only (see the module docstring)."""

    name = "zk"
    capabilities = frozenset({Capability.BROWSE})
    options: ClassVar[dict[str, str]] = {
        "credentials_file": "file holding user:password for digest-protected znodes",
        "timeout": "seconds to wait for ZooKeeper (connect and each call; default 5)",
    }

    def __init__(self, mount: Mount) -> None:
        super().__init__(mount)
        self._client: Any = None

    # ---- plumbing ----------------------------------------------------------------------------

    @classmethod
    def availability(cls) -> Availability:
        if importlib.util.find_spec("kazoo") is None:
            return Availability(False, "kazoo is not installed (pip install 'dshell[zk]')")
        return Availability(True)

    def validate_mount(self) -> None:
        self._target()
        self._timeout()
        self._credentials()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.stop()
            client.close()

    def _target(self) -> ZkTarget:
        try:
            return parse_zk_url(self.mount.source)
        except ValueError as exc:
            raise UsageError(f"mount -t zk: {exc}") from None

    def _timeout(self) -> float:
        return _seconds(self.mount.options.get("timeout", "5"))

    def _credentials(self) -> str | None:
        path = self.mount.options.get("credentials_file")
        if not path:
            return None
        try:
            text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"mount -o credentials_file={path!r}: {why}") from None
        try:
            split_credentials(text, f"mount -o credentials_file={path!r}")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return text

    def _zk(self) -> Any:
        """The connected kazoo client (connects on first use)."""
        if self._client is not None:
            return self._client
        from kazoo.client import KazooClient
        from kazoo.handlers.threading import KazooTimeoutError
        from kazoo.retry import KazooRetry

        target, timeout, secret = self._target(), self._timeout(), self._credentials()
        client = KazooClient(
            hosts=target.hosts,
            connection_retry=KazooRetry(max_tries=-1, max_delay=1.0),
            auth_data=[("digest", secret)] if secret else None,
            read_only=True,  # an ensemble without quorum still answers reads
        )
        try:
            client.start(timeout=timeout)  # stops the client itself on a timeout
        except KazooTimeoutError:
            raise UnreachableError(
                f"ZooKeeper {target.hosts} is unreachable (no connection within {timeout:g}s)"
            ) from None
        self._client = client
        return client

    def _znode(self, path: str) -> str:
        rest = "/".join(p for p in path.split("/") if p)
        return posixpath.join(self._target().path, rest) if rest else self._target().path

    def _shown(self, path: str) -> str:
        rest = "/".join(p for p in path.split("/") if p)
        return self.mount.target.rstrip("/") + "/" + rest if rest else self.mount.target

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        """kazoo's exceptions as dshell errors naming the namespace path."""
        from kazoo.exceptions import (
            ConnectionLoss,
            KazooException,
            NoAuthError,
            NoNodeError,
            SessionExpiredError,
        )
        from kazoo.handlers.threading import KazooTimeoutError

        shown = self._shown(path)
        try:
            yield
        except NoNodeError:
            raise NotFoundError(f"{shown}: no such znode") from None
        except NoAuthError:
            raise BackendError(
                f"{shown}: the znode's ACL does not allow reading it "
                "(mount with -o credentials_file=FILE holding user:password)"
            ) from None
        except (ConnectionLoss, SessionExpiredError, KazooTimeoutError) as exc:
            self.close()
            raise UnreachableError(
                f"{shown}: ZooKeeper {self._target().hosts} did not answer ({type(exc).__name__})"
            ) from None
        except KazooException as exc:
            raise BackendError(f"{shown}: ZooKeeper error: {type(exc).__name__} {exc}") from None

    # ---- the tree --------------------------------------------------------------------------------

    def browse(self, path: str) -> list[FileEntry]:
        """Entries of the znode ``path`` (relative to the mount); a leaf with data lists itself."""
        timeout = self._timeout()
        with self._errors(path):
            zk = self._zk()
            znode = self._znode(path)
            zk.sync_async(znode).get(timeout=timeout)  # see the writes of other clients too
            children = sorted(zk.get_children_async(znode).get(timeout=timeout))
            if not children:
                data, stat = zk.get_async(znode).get(timeout=timeout)
                if data and znode != self._target().path:
                    return [self._entry(posixpath.basename(znode), data, stat)]
                return []
            pending = [(c, zk.get_async(posixpath.join(znode, c))) for c in children]
            return [e for c, result in pending if (e := self._child(c, result, timeout))]

    def _child(self, name: str, result: Any, timeout: float) -> FileEntry | None:
        from kazoo.exceptions import NoNodeError

        try:
            data, stat = result.get(timeout=timeout)
        except NoNodeError:
            return None  # gone since the listing (a member withdrawn meanwhile)
        return self._entry(name, data, stat)

    def _entry(self, name: str, data: bytes | None, stat: Any) -> FileEntry:
        member = decode_member(data) if data and name.startswith(MEMBER_PREFIX) else None
        is_dir = bool(stat.numChildren) or not data
        if member is not None:
            detail: str | None = member.summary()
        elif stat.numChildren:
            detail = f"{stat.numChildren} child" + ("ren" if stat.numChildren > 1 else "")
        else:
            detail = None
        return FileEntry(
            name=name,
            kind="dir" if is_dir else "file",
            size=None if is_dir else stat.dataLength,
            mtime=_iso(stat.mtime),
            mode="ephemeral" if stat.ephemeralOwner else None,
            detail=detail,
        )

    def read_path(self, path: str, *, offset: int = 0) -> Iterator[bytes]:
        """The data of the znode ``path`` (``cat``); a directory is a usage error."""
        timeout = self._timeout()
        with self._errors(path):
            zk, znode = self._zk(), self._znode(path)
            zk.sync_async(znode).get(timeout=timeout)  # see the writes of other clients too
            data, stat = zk.get_async(znode).get(timeout=timeout)
        if not data and stat.numChildren:
            raise UsageError(f"{self._shown(path)}: is a directory (a znode with children)")
        if data and data[offset:]:
            yield data[offset:]

    # ---- the required listings: a ZooKeeper tree has no tasks or agents ----------------------

    def list_tasks(self, query: TaskQuery) -> list[Task]:
        return []  # TASKS is not declared: `ps` ends UNSUPPORTED before calling this

    def get_task(self, task_id: str) -> Task:
        raise NotFoundError(f"no task {task_id!r} on {self.mount.target} (a ZooKeeper tree)")

    def list_agents(self) -> list[Agent]:
        return []
