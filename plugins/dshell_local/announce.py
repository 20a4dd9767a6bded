"""Service discovery: healthy service instances announced in ZooKeeper as Aurora serversets.

When ``[zookeeper]`` is configured (see :mod:`dshell_local.config` and
``docs/service-discovery.md``), the services controller announces each *healthy* instance::

    announcer = ServerSetAnnouncer.from_config(cfg.zookeeper)
    await announcer.start()
    await announcer.announce(task_id, role="www", environment="prod", name="hello",
                             shard=0, host="node-a", endpoints={"http": 31001}, primary="http")
    await announcer.withdraw(task_id)      # unhealthy, killed, finished
    await announcer.close()                # the session ends: every member disappears

Each member is an ephemeral sequential znode ``<base>/<role>/<environment>/<name>/member_N``
holding Aurora's serverset JSON (:func:`dshell_zk.serverset.member_data`).

The announcer keeps the *desired* members and one worker task makes ZooKeeper match them, so
nothing here raises into the engine because ZooKeeper is away: a member announced while it is
unreachable is created once connected; after a session loss (LOST, then CONNECTED on a new
session) every desired member is created again; a mere disconnect (SUSPENDED) changes nothing,
since ephemeral nodes live as long as the session. Every kazoo call is asynchronous
(``*_async`` results bridged to the event loop, each with a timeout), so the loop never blocks.
A create whose answer was lost with the connection is resolved later by looking for a member
with this session's id and the same data (adopted, or deleted if no longer wanted), so a
flapping connection never leaves duplicate members.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dshell_zk.serverset import MEMBER_PREFIX, member_data, serverset_path
from dshell_zk.url import ZkTarget, parse_zk_url, split_credentials

if TYPE_CHECKING:
    from .config import ZookeeperConfig

__all__ = ["ServerSetAnnouncer", "ZkTarget", "parse_zk_url"]

log = logging.getLogger(__name__)

_RETRY_FIRST = 0.5  # seconds before retrying a failed reconciliation; doubles up to _RETRY_MAX
_RETRY_MAX = 30.0


@dataclass(frozen=True)
class _Member:
    parent: str  # the serverset znode
    data: bytes  # the member's JSON


@dataclass(frozen=True)
class _Node:
    path: str  # the member znode ZooKeeper created (parent/member_0000000042)
    member: _Member


class ServerSetAnnouncer:
    """Aurora-style serverset membership for the engine's service instances.

    ``target`` comes from :func:`parse_zk_url`; ``credentials`` (``user:password``) add
    digest authentication, and then every znode the announcer creates — members and the
    parents it makes — carries a digest ACL granting that user all permissions (instead of
    ``world:anyone``). ``session_timeout`` is ZooKeeper's session timeout in seconds;
    ``op_timeout`` bounds each ZooKeeper call and how long ``announce``/``withdraw`` wait for
    ZooKeeper to reflect the change (default: ``session_timeout``).
    """

    def __init__(
        self,
        target: ZkTarget,
        *,
        credentials: str | None = None,
        session_timeout: float = 10.0,
        op_timeout: float | None = None,
        reconnect_max_delay: float = 5.0,
    ) -> None:
        self.target = target
        self.session_timeout = session_timeout
        self.op_timeout = op_timeout or session_timeout
        self._credentials = split_credentials(credentials) if credentials else None
        self._reconnect_max_delay = reconnect_max_delay
        self._acl: list[Any] | None = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = _RETRY_FIRST
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._desired: dict[str, _Member] = {}
        self._nodes: dict[str, _Node] = {}
        # creates whose answer was lost (ConnectionLoss/timeout): the node may exist
        self._uncertain: dict[str, _Member] = {}
        self._epoch = 0  # bumped at each session loss: results of older calls are void

    @classmethod
    def from_config(cls, cfg: ZookeeperConfig) -> ServerSetAnnouncer:
        """The announcer for the engine's resolved ``[zookeeper]`` section."""
        return cls(cfg.target, credentials=cfg.credentials, session_timeout=cfg.session_timeout)

    # ---- public API ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the ZooKeeper session is connected right now."""
        return self._client is not None and bool(self._client.connected)

    def members(self) -> dict[str, str]:
        """The members that exist in ZooKeeper now: engine key → member znode path."""
        return {key: node.path for key, node in self._nodes.items()}

    async def start(self, *, wait: float = 2.0) -> None:
        """Connect in the background; wait at most ``wait`` seconds for the first connection.

        Never raises because ZooKeeper is unreachable: kazoo keeps trying, and members
        announced meanwhile are created once connected.
        """
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._client = await asyncio.to_thread(self._make_client)
        self._worker = asyncio.create_task(self._run(), name="zk-announcer")
        self._worker.add_done_callback(_report_death)
        await asyncio.to_thread(self._client.start_async)
        if wait > 0:
            await self._settle(lambda: self.connected, wait, while_connected=False)
            if not self.connected:
                log.warning("ZooKeeper %s: not connected yet; still trying", self.target.hosts)

    async def announce(
        self,
        key: str,
        role: str,
        environment: str,
        name: str,
        shard: int,
        host: str,
        endpoints: Mapping[str, int],
        primary: str,
        *,
        zk_path: str | None = None,
    ) -> None:
        """Make ``key`` (the engine's task id) a member of ``<base>/<role>/<environment>/<name>``.

        ``endpoints`` are the instance's named ports (all of them become
        ``additionalEndpoints``); ``primary`` names the ``serviceEndpoint`` (port 0 if the
        instance has no such port, as Aurora does). ``zk_path`` replaces the serverset path
        (Aurora's ``announce.zk_path``). Announcing the same member again does nothing;
        different data for the same key replaces the member. Returns once ZooKeeper holds the
        member, or at once when it is unreachable (created when the connection comes back),
        or after ``op_timeout``. Raises ValueError only for invalid arguments.
        """
        member = self._member(role, environment, name, shard, host, endpoints, primary, zk_path)
        node = self._nodes.get(key)
        if self._desired.get(key) == member and node is not None and node.member == member:
            return
        self._desired[key] = member
        self._wake.set()
        if not self.connected:
            log.warning(
                "ZooKeeper %s not connected: %s joins %s once it is",
                self.target.hosts,
                key,
                member.parent,
            )
            return

        def done() -> bool:
            now = self._nodes.get(key)
            return self._desired.get(key) != member or (now is not None and now.member == member)

        if not await self._settle(done):
            log.warning("ZooKeeper %s: %s still joining %s", self.target.hosts, key, member.parent)

    async def withdraw(self, key: str) -> None:
        """Remove ``key``'s member (no-op for an unknown key); returns like :meth:`announce`."""
        self._desired.pop(key, None)
        self._wake.set()  # also when a create for it is in flight: the next pass deletes it
        if key not in self._nodes and key not in self._uncertain:
            return
        if self.connected:
            await self._settle(lambda: key not in self._nodes and key not in self._uncertain)

    async def close(self) -> None:
        """End the session: ZooKeeper deletes every member at once. Idempotent."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        client, self._client = self._client, None
        self._loop = None  # the listener ignores the states the shutdown reports
        if client is not None:
            await asyncio.to_thread(_shutdown, client)
        self._nodes.clear()
        self._uncertain.clear()

    # ---- connection --------------------------------------------------------------------------

    def _make_client(self) -> Any:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        auth = None
        if self._credentials is not None:
            from kazoo.security import make_digest_acl

            user, password = self._credentials
            self._acl = [make_digest_acl(user, password, all=True)]
            auth = [("digest", f"{user}:{password}")]
        client = KazooClient(
            hosts=self.target.hosts,
            timeout=self.session_timeout,
            connection_retry=KazooRetry(max_tries=-1, max_delay=self._reconnect_max_delay),
            auth_data=auth,
            default_acl=self._acl,
        )
        client.add_listener(self._listener)
        return client

    def _listener(self, state: str) -> None:
        """Kazoo's connection thread: hand the state change to the event loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._on_state, state)

    def _on_state(self, state: str) -> None:
        if self._loop is None:
            return
        if state == "LOST":
            self._epoch += 1
            if self._nodes or self._uncertain:
                log.warning(
                    "ZooKeeper session lost: %d serverset member(s) gone; they are announced "
                    "again once reconnected",
                    len(self._nodes),
                )
            self._nodes.clear()
            self._uncertain.clear()
            self._notify()
        elif state == "SUSPENDED":
            log.info("ZooKeeper connection suspended; members stay while the session lives")
        else:
            log.info("ZooKeeper %s connected", self.target.hosts)
            self._wake.set()
            self._notify()

    # ---- reconciliation ------------------------------------------------------------------------

    async def _run(self) -> None:
        from kazoo.exceptions import KazooException

        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.connected:
                continue  # CONNECTED wakes us again
            try:
                await self._reconcile()
            except (KazooException, TimeoutError) as exc:
                log.warning(
                    "ZooKeeper %s: serverset update failed (%s); retrying in %.1fs",
                    self.target.hosts,
                    type(exc).__name__ + (f": {exc}" if str(exc) else ""),
                    self._retry_delay,
                )
                self._retry_later()
            else:
                self._retry_delay = _RETRY_FIRST
            self._notify()

    def _retry_later(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._loop is not None:
            self._retry = self._loop.call_later(self._retry_delay, self._wake.set)
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)

    async def _reconcile(self) -> None:
        """One pass making ZooKeeper hold exactly the desired members (raises kazoo errors)."""
        epoch = self._epoch
        for key, member in list(self._uncertain.items()):
            await self._resolve_uncertain(key, member, epoch)
            if self._epoch != epoch:
                return
        for key, node in list(self._nodes.items()):
            if self._desired.get(key) == node.member:
                continue
            await self._delete(node.path)
            if self._epoch != epoch:
                return
            if self._nodes.get(key) == node:
                del self._nodes[key]
            self._notify()
        for key, member in list(self._desired.items()):
            if key in self._nodes or self._desired.get(key) != member:
                continue
            path = await self._create(key, member, epoch)
            if self._epoch != epoch:
                return
            self._nodes[key] = _Node(path, member)
            if self._desired.get(key) != member:
                self._wake.set()  # withdrawn or changed meanwhile: the next pass fixes it
            self._notify()

    async def _create(self, key: str, member: _Member, epoch: int) -> str:
        from kazoo.exceptions import ConnectionLoss

        await self._op(self._client.ensure_path_async(member.parent, acl=self._acl))
        try:
            path: str = await self._op(
                self._client.create_async(
                    f"{member.parent}/{MEMBER_PREFIX}",
                    member.data,
                    acl=self._acl,
                    ephemeral=True,
                    sequence=True,
                )
            )
        except (ConnectionLoss, TimeoutError):
            if self._epoch == epoch:
                self._uncertain[key] = member
            raise
        return path

    async def _resolve_uncertain(self, key: str, member: _Member, epoch: int) -> None:
        found = await self._find_own(member)
        if self._epoch != epoch:
            return
        self._uncertain.pop(key, None)
        if found is None:
            return
        if self._desired.get(key) == member and key not in self._nodes:
            self._nodes[key] = _Node(found, member)
            self._notify()
        else:
            await self._delete(found)

    async def _find_own(self, member: _Member) -> str | None:
        """A member node of this session holding ``member``'s data that no key owns yet."""
        from kazoo.exceptions import NoNodeError

        session = self._client.client_id
        if session is None:
            return None
        try:
            children = await self._op(self._client.get_children_async(member.parent))
        except NoNodeError:
            return None
        owned = {node.path for node in self._nodes.values()}
        for child in sorted(children):
            path = f"{member.parent}/{child}"
            if not child.startswith(MEMBER_PREFIX) or path in owned:
                continue
            try:
                data, stat = await self._op(self._client.get_async(path))
            except NoNodeError:
                continue
            if stat.ephemeralOwner == session[0] and data == member.data:
                return path
        return None

    async def _delete(self, path: str) -> None:
        from kazoo.exceptions import NoNodeError

        with contextlib.suppress(NoNodeError):
            await self._op(self._client.delete_async(path))

    async def _op(self, result: Any) -> Any:
        """Await a kazoo IAsyncResult from the event loop, for at most ``op_timeout``."""
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Any] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if not fut.done():
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

        def done(res: Any) -> None:  # a kazoo thread
            ok = bool(res.successful())
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, ok, res.value if ok else res.exception)

        result.rawlink(done)
        return await asyncio.wait_for(fut, self.op_timeout)

    # ---- helpers ---------------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every ``_settle`` waiter to re-check its condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _settle(
        self,
        done: Callable[[], bool],
        timeout: float | None = None,
        *,
        while_connected: bool = True,
    ) -> bool:
        """Wait at most ``timeout`` (``op_timeout``) until ``done()``; with ``while_connected``,
        stop waiting when the connection drops. Whether ``done()`` came true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.op_timeout if timeout is None else timeout)
        while not done():
            left = deadline - loop.time()
            if left <= 0 or (while_connected and not self.connected):
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return True

    def _member(
        self,
        role: str,
        environment: str,
        name: str,
        shard: int,
        host: str,
        endpoints: Mapping[str, int],
        primary: str,
        zk_path: str | None,
    ) -> _Member:
        parent = serverset_path(self.target.path, role, environment, name, zk_path)
        main = endpoints.get(primary)
        if main is None:  # Aurora announces port 0 then (a port it did not allocate)
            log.warning("announce: no port %r for shard %s of %s; port 0", primary, shard, parent)
        return _Member(parent, member_data(host, main or 0, endpoints, shard))


def _shutdown(client: Any) -> None:
    """Stop and release a kazoo client (blocking: runs in a worker thread)."""
    client.stop()
    client.close()


def _report_death(task: asyncio.Task[None]) -> None:
    """A worker that ended other than by close() is a bug: say so in the engine log."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the ZooKeeper announcer stopped", exc_info=task.exception())
