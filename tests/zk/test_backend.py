"""The read-only ``zk`` backend, directly and through the CLI, over members the announcer wrote."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from dshell.backend import Mount
from dshell.errors import BackendError, ExitCode, NotFoundError, UnreachableError, UsageError

from dshell_local.announce import ServerSetAnnouncer, parse_zk_url
from dshell_zk.backend import ZkBackend

from .conftest import TEST_PASSWORD, TEST_USER, Ensemble

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def announced(zk: Ensemble, zk_root: str) -> Iterator[dict[str, str]]:
    """Two members of www/prod/hello, announced by a ServerSetAnnouncer on its own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    ann = ServerSetAnnouncer(parse_zk_url(zk.url(zk_root)))
    try:
        call(ann.start(wait=30))
        ports = {"http": 31001, "admin": 31002}
        call(ann.announce("web.1", "www", "prod", "hello", 0, "node-a", ports, "http"))
        call(ann.announce("web.2", "www", "prod", "hello", 1, "node-b", {"http": 31003}, "http"))
        yield ann.members()
    finally:
        call(ann.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def backend(source: str, **options: str) -> ZkBackend:
    return ZkBackend(Mount(target="/disco", type="zk", source=source, options=options))


# ---- the backend itself --------------------------------------------------------------------------


def test_browse_and_read_members(zk: Ensemble, zk_root: str, announced: dict[str, str]) -> None:
    zkb = backend(zk.url(zk_root))
    try:
        (www,) = zkb.browse("")
        assert (www.name, www.kind, www.detail) == ("www", "dir", "1 child")
        entries = zkb.browse("www/prod/hello")
        names = {path.rsplit("/", 1)[1]: key for key, path in announced.items()}
        assert sorted(e.name for e in entries) == sorted(names)
        first = next(e for e in entries if names[e.name] == "web.1")
        assert first.kind == "file" and first.mode == "ephemeral"
        assert first.detail == "node-a:31001 shard=0 ALIVE admin,http"
        assert first.mtime and first.mtime.endswith("Z")
        data = b"".join(zkb.read_path(f"www/prod/hello/{first.name}"))
        assert json.loads(data)["serviceEndpoint"] == {"host": "node-a", "port": 31001}
        assert first.size == len(data)
        assert zkb.browse(f"www/prod/hello/{first.name}") == [first]  # `ls FILE`
        with pytest.raises(NotFoundError, match="/disco/www/nope: no such znode"):
            zkb.browse("www/nope")
        with pytest.raises(UsageError, match="is a directory"):
            b"".join(zkb.read_path("www"))
    finally:
        zkb.close()


def test_digest_protected_znodes_need_the_credentials(
    zk: Ensemble, zk_root: str, admin: Any, tmp_path
) -> None:
    from kazoo.security import make_digest_acl

    acl = [make_digest_acl(TEST_USER, TEST_PASSWORD, all=True)]
    admin.create(f"{zk_root}/secret", b"hidden", acl=acl, makepath=True)
    anonymous = backend(zk.url(zk_root))
    creds = tmp_path / "digest"
    creds.write_text(f"{TEST_USER}:{TEST_PASSWORD}\n")
    allowed = backend(zk.url(zk_root), credentials_file=str(creds))
    try:
        with pytest.raises(BackendError, match="credentials_file"):
            b"".join(anonymous.read_path("secret"))
        assert b"".join(allowed.read_path("secret")) == b"hidden"
    finally:
        anonymous.close()
        allowed.close()


def test_unreachable_zookeeper() -> None:
    zkb = backend(f"zk://127.0.0.1:{free_port()}/aurora", timeout="1")
    with pytest.raises(UnreachableError, match="unreachable"):
        zkb.browse("")


def test_validate_mount(tmp_path) -> None:
    assert ZkBackend.availability().available
    for bad, message in [
        (backend("zk://h:99999/aurora"), "'zk://h:99999/aurora': bad port"),
        (backend("zk://h/aurora", timeout="soon"), "timeout"),
        (backend("zk://h/aurora", credentials_file=str(tmp_path / "none")), "credentials_file"),
    ]:
        with pytest.raises(UsageError, match=message):
            bad.validate_mount()
    backend("zk://h1:2181,h2:2181/aurora", timeout="2").validate_mount()


# ---- through the CLI -----------------------------------------------------------------------------


def test_mount_with_a_bad_url_is_a_usage_error(cli, dshell_dirs) -> None:
    result = cli("mount -t zk http://h:2181/aurora /disco")
    assert result.status == ExitCode.USAGE
    assert "'http://h:2181/aurora' is not a ZooKeeper URL" in result.stderr
    assert "/disco" not in cli("mount").stdout  # nothing was written


def test_verbs_a_tree_cannot_do_are_unsupported(cli, dshell_dirs, zk: Ensemble) -> None:
    assert cli(f"mount -t zk {zk.url('/aurora')} /disco").status == 0
    result = cli("ps /disco")
    assert result.status == ExitCode.UNSUPPORTED
    assert "backend 'zk' does not support task listing" in result.stderr
    assert cli("run -d --on /disco -- echo hi").status == ExitCode.UNSUPPORTED
    assert cli("nodes /disco").status == ExitCode.UNSUPPORTED


def test_ls_and_cat_show_what_was_announced(
    cli, dshell_dirs, zk: Ensemble, zk_root: str, announced: dict[str, str]
) -> None:
    assert cli(f"mount -t zk {zk.url(zk_root)} /disco").status == 0
    top = cli("ls /disco")
    assert top.status == 0 and [line.split("\t")[0] for line in top.lines[1:]] == ["www"]
    listing = cli("ls /disco/www/prod/hello -o json")
    assert listing.status == 0, listing.stderr
    by_name = {e["name"]: e for e in json.loads(listing.stdout)}
    one = announced["web.1"].rsplit("/", 1)[1]
    assert set(by_name) == {p.rsplit("/", 1)[1] for p in announced.values()}
    assert by_name[one]["detail"] == "node-a:31001 shard=0 ALIVE admin,http"
    cat = cli(f"cat /disco/www/prod/hello/{one}")
    assert cat.status == 0, cat.stderr
    assert json.loads(cat.stdout) == {
        "serviceEndpoint": {"host": "node-a", "port": 31001},
        "additionalEndpoints": {
            "admin": {"host": "node-a", "port": 31002},
            "http": {"host": "node-a", "port": 31001},
        },
        "status": "ALIVE",
        "shard": 0,
    }
    assert cli("ls /disco/www/nope").status == ExitCode.NOT_FOUND


def test_ls_of_an_unreachable_zookeeper_exits_unreachable(cli, dshell_dirs) -> None:
    source = f"zk://127.0.0.1:{free_port()}/aurora"
    assert cli(f"mount -t zk -o timeout=1 {source} /disco").status == 0
    result = cli("ls /disco")
    assert result.status == ExitCode.UNREACHABLE
    assert "127.0.0.1" in result.stderr and "unreachable" in result.stderr
