"""ServerSetAnnouncer against a real 3-member ZooKeeper ensemble.

Every wait is a bounded poll on a condition (``eventually``); nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from conftest import require_service
from dshell_local.announce import ServerSetAnnouncer, parse_zk_url

from .conftest import TEST_PASSWORD, TEST_USER, Ensemble
from .proxy import Proxy

pytestmark = pytest.mark.timeout(180)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 150) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def eventually(check: Callable[[], T], timeout: float, what: str) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def ask(admin: Any, method: Callable[..., T], path: str, *args: Any) -> T:
    """An admin-client read of ``path``, after a ``sync`` (the admin client may be connected to
    a follower that has not yet applied the announcer's writes), with kazoo's retry (the
    ensemble may be electing a leader)."""

    def call() -> T:
        admin.retry(admin.sync, path)
        return admin.retry(method, path, *args)

    return await asyncio.to_thread(call)


def expected_json(port: int, shard: int, host: str = "node-a") -> dict[str, Any]:
    return {
        "serviceEndpoint": {"host": host, "port": port},
        "additionalEndpoints": {
            "admin": {"host": host, "port": port + 1},
            "http": {"host": host, "port": port},
        },
        "status": "ALIVE",
        "shard": shard,
    }


async def hello(
    ann: ServerSetAnnouncer, key: str = "t1", port: int = 31001, shard: int = 0
) -> None:
    await ann.announce(
        key, "www", "prod", "hello", shard, "node-a", {"http": port, "admin": port + 1}, "http"
    )


def announcer(hosts: str, base: str, **kw: Any) -> ServerSetAnnouncer:
    return ServerSetAnnouncer(parse_zk_url(f"zk://{hosts}{base}"), **kw)


def expire_session(hosts: str, client_id: tuple[int, bytes]) -> None:
    """kazoo's classic trick: join the session from a second client, then close it."""
    from kazoo.client import KazooClient

    other = KazooClient(hosts=hosts, client_id=client_id)
    other.start(timeout=30)
    other.stop()
    other.close()


# ---- membership ----------------------------------------------------------------------------------


def test_announce_creates_an_ephemeral_sequential_member(zk: Ensemble, zk_root, admin) -> None:
    async def main() -> None:
        ann = announcer(zk.hosts, zk_root)
        await ann.start(wait=30)
        try:
            await hello(ann, port=31001, shard=3)
            path = ann.members()["t1"]
            parent, name = path.rsplit("/", 1)
            assert parent == f"{zk_root}/www/prod/hello"
            assert re.fullmatch(r"member_\d{10}", name)
            data, stat = await ask(admin, admin.get, path)
            assert json.loads(data) == expected_json(31001, 3)
            assert stat.ephemeralOwner != 0
        finally:
            await ann.close()
        assert await ask(admin, admin.exists, path) is None  # the session ended with close()

    run(main())


def test_announce_is_idempotent_per_key_and_replaces_changed_data(zk, zk_root, admin) -> None:
    parent = f"{zk_root}/www/prod/hello"

    async def main() -> None:
        ann = announcer(zk.hosts, zk_root)
        await ann.start(wait=30)
        try:
            await hello(ann)
            first = ann.members()["t1"]
            await hello(ann)
            assert ann.members() == {"t1": first}
            assert await ask(admin, admin.get_children, parent) == [first.rsplit("/", 1)[1]]
            await hello(ann, port=32001)  # same key, new data: one member, the new one
            second = ann.members()["t1"]
            assert second != first
            assert await ask(admin, admin.get_children, parent) == [second.rsplit("/", 1)[1]]
            data, _ = await ask(admin, admin.get, second)
            assert json.loads(data) == expected_json(32001, 0)
        finally:
            await ann.close()

    run(main())


def test_withdraw_removes_only_that_member(zk, zk_root, admin) -> None:
    async def main() -> None:
        ann = announcer(zk.hosts, zk_root)
        await ann.start(wait=30)
        try:
            await hello(ann, "t1")
            await hello(ann, "t2", port=31003, shard=1)
            one, two = ann.members()["t1"], ann.members()["t2"]
            await ann.withdraw("t1")
            assert ann.members() == {"t2": two}
            assert await ask(admin, admin.exists, one) is None
            assert await ask(admin, admin.exists, two) is not None
            await ann.withdraw("t1")  # again, and an unknown key: nothing happens
            await ann.withdraw("no-such-task")
        finally:
            await ann.close()

    run(main())


def test_invalid_arguments_are_value_errors() -> None:
    async def main() -> None:
        ann = announcer("127.0.0.1:1", "/aurora")  # never started: validation comes first
        bad: list[dict[str, Any]] = [
            {"role": "a/b"},
            {"environment": ""},
            {"name": ".."},
            {"host": ""},
            {"shard": -1},
            {"endpoints": {"http": 70000}},
            {"zk_path": "relative/path"},
        ]
        for override in bad:
            args: dict[str, Any] = {
                "key": "k",
                "role": "www",
                "environment": "prod",
                "name": "hello",
                "shard": 0,
                "host": "h",
                "endpoints": {"http": 1},
                "primary": "http",
                **override,
            }
            with pytest.raises(ValueError):
                await ann.announce(**args)
        assert ann.members() == {}

    run(main())


# ---- connection trouble ------------------------------------------------------------------------


def _first_member(zk: Ensemble) -> tuple[str, int]:
    host, port = zk.hosts.split(",")[0].rsplit(":", 1)
    return host, int(port)


def test_announced_while_unreachable_then_created_on_connect(zk, zk_root, admin) -> None:
    proxy = Proxy(_first_member(zk))  # not listening yet: ZooKeeper is unreachable

    async def main() -> None:
        ann = announcer(proxy.hosts, zk_root, reconnect_max_delay=0.5)
        await ann.start(wait=0)
        try:
            await hello(ann)  # returns at once and never raises
            assert ann.members() == {}
            proxy.start()
            path = await eventually(lambda: ann.members().get("t1"), 60, "the member")
            data, _ = await ask(admin, admin.get, path)
            assert json.loads(data) == expected_json(31001, 0)
        finally:
            await ann.close()
            proxy.stop()

    run(main())


def test_close_while_unreachable_returns(zk) -> None:
    proxy = Proxy(_first_member(zk))  # never listening

    async def main() -> None:
        ann = announcer(proxy.hosts, "/aurora", reconnect_max_delay=0.5)
        await ann.start(wait=0.2)
        await hello(ann)
        assert not ann.connected
        await ann.close()

    run(main(), timeout=60)


def test_disconnect_changes_nothing_while_the_session_lives(zk, zk_root, admin) -> None:
    proxy = Proxy(_first_member(zk))
    proxy.start()
    parent = f"{zk_root}/www/prod/hello"

    async def main() -> None:
        ann = announcer(proxy.hosts, zk_root, session_timeout=20, reconnect_max_delay=0.5)
        await ann.start(wait=30)
        try:
            await hello(ann)
            path = ann.members()["t1"]
            proxy.stop()  # SUSPENDED: the session lives on in the ensemble
            await eventually(lambda: not ann.connected, 30, "the announcer to see the cut")
            assert await ask(admin, admin.exists, path) is not None
            proxy.start()
            await eventually(lambda: ann.connected, 30, "the reconnection")
            await hello(ann, "t2", port=31003, shard=1)  # announcing still works
            two = ann.members()["t2"]
            assert ann.members()["t1"] == path  # the same node: nothing was re-created
            names = sorted(p.rsplit("/", 1)[1] for p in (path, two))
            assert sorted(await ask(admin, admin.get_children, parent)) == names
        finally:
            await ann.close()
            proxy.stop()

    run(main())


def test_killing_one_ensemble_member_changes_nothing(zk, zk_root, admin) -> None:
    require_service(zk.dir is not None, "DSHELL_TEST_ZK_DIR (the ensemble's directory)")
    parent = f"{zk_root}/www/prod/hello"

    async def main() -> None:
        ann = announcer(zk.hosts, zk_root, session_timeout=20)
        await ann.start(wait=30)
        try:
            await hello(ann)
            path = ann.members()["t1"]
            leader = zk.leader()
            await asyncio.to_thread(zk.kill, leader)  # an election follows; quorum is 2 of 3
            try:
                await hello(ann, "t2", port=31003, shard=1)
                two = await eventually(lambda: ann.members().get("t2"), 60, "the new member")
                assert ann.members()["t1"] == path
                assert await ask(admin, admin.exists, path) is not None
                names = sorted(p.rsplit("/", 1)[1] for p in (path, two))
                assert sorted(await ask(admin, admin.get_children, parent)) == names
            finally:
                await asyncio.to_thread(zk.restart, leader)
        finally:
            await ann.close()

    run(main())


def test_session_expiry_recreates_every_member(zk, zk_root, admin) -> None:
    parent = f"{zk_root}/www/prod/hello"

    async def main() -> None:
        ann = announcer(zk.hosts, zk_root)
        await ann.start(wait=30)
        try:
            await hello(ann, "t1")
            await hello(ann, "t2", port=31003, shard=1)
            old = ann.members()
            client_id = ann._client.client_id  # the session to expire
            await asyncio.to_thread(expire_session, zk.hosts, client_id)

            def renewed() -> dict[str, str] | None:
                now = ann.members()
                fresh = set(now) == {"t1", "t2"} and all(now[k] != old[k] for k in now)
                return now if fresh else None

            new = await eventually(renewed, 60, "the members on the new session")
            for key in ("t1", "t2"):
                assert await ask(admin, admin.exists, old[key]) is None
            data, stat = await ask(admin, admin.get, new["t2"])
            assert json.loads(data) == expected_json(31003, 1)
            assert stat.ephemeralOwner == ann._client.client_id[0]  # the new session's
            names = sorted(p.rsplit("/", 1)[1] for p in new.values())
            assert sorted(await ask(admin, admin.get_children, parent)) == names
        finally:
            await ann.close()

    run(main())


def test_creates_whose_answer_was_lost_are_adopted_or_removed(zk, zk_root, admin) -> None:
    """A create sent before a connection loss may have happened: it is found by this
    session's id and data, adopted if still wanted (no duplicate), deleted if not."""
    parent = f"{zk_root}/www/prod/hello"

    async def main() -> None:
        ann = announcer(zk.hosts, zk_root)
        await ann.start(wait=30)
        try:
            ports = {"http": 31001, "admin": 31002}
            wanted = ann._member("www", "prod", "hello", 0, "node-a", ports, "http", None)
            stale = ann._member("www", "prod", "hello", 1, "node-b", {"http": 1}, "http", None)

            def lost_create(data: bytes) -> str:  # as if the answer never came back
                return ann._client.create(
                    f"{parent}/member_", data, ephemeral=True, sequence=True, makepath=True
                )

            kept = await asyncio.to_thread(lost_create, wanted.data)
            gone = await asyncio.to_thread(lost_create, stale.data)
            ann._uncertain.update({"t1": wanted, "t2": stale})
            await hello(ann, "t1")
            await eventually(lambda: not ann._uncertain, 30, "the lost creates to be resolved")
            assert ann.members() == {"t1": kept}
            assert await ask(admin, admin.get_children, parent) == [kept.rsplit("/", 1)[1]]
            assert await ask(admin, admin.exists, gone) is None
        finally:
            await ann.close()

    run(main())


# ---- credentials ---------------------------------------------------------------------------------


def test_credentials_put_a_digest_acl_on_members_and_created_parents(zk, zk_root, admin) -> None:
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_digest_acl

    base = f"{zk_root}/secure"  # nothing exists: the announcer creates every parent
    creds = f"{TEST_USER}:{TEST_PASSWORD}"

    async def main() -> None:
        ann = announcer(zk.hosts, base, credentials=creds)
        await ann.start(wait=30)
        try:
            await hello(ann)
            path = ann.members()["t1"]
            want = [make_digest_acl(TEST_USER, TEST_PASSWORD, all=True)]
            created = [zk_root, base, f"{base}/www", f"{base}/www/prod", f"{base}/www/prod/hello"]
            for node in [*created, path]:
                acls, _ = await ask(admin, admin.get_acls, node)
                assert acls == want, node
                assert all(acl.id.scheme == "digest" for acl in acls)
            anon = KazooClient(hosts=zk.hosts)
            anon.start(timeout=30)
            try:
                with pytest.raises(NoAuthError):
                    anon.get(path)
            finally:
                anon.stop()
                anon.close()
        finally:
            await ann.close()

    run(main())
