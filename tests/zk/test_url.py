"""zk:// URLs, digest credentials and the serverset JSON codec (no ZooKeeper needed)."""

from __future__ import annotations

import json

import pytest

from dshell_local.announce import ZkTarget, parse_zk_url
from dshell_zk.serverset import decode_member, member_data
from dshell_zk.url import check_name, split_credentials


@pytest.mark.parametrize(
    ("url", "hosts", "path"),
    [
        ("zk://127.0.0.1:2181/aurora", "127.0.0.1:2181", "/aurora"),
        ("zk://a:1,b:2,c:3/aurora/prod", "a:1,b:2,c:3", "/aurora/prod"),
        ("zk://zk1.example.com/aurora", "zk1.example.com:2181", "/aurora"),  # default port
        ("ZK://h:2181/a/", "h:2181", "/a"),  # trailing slash dropped
        ("zk://h:2181", "h:2181", "/"),
        ("zk://h:2181/", "h:2181", "/"),
        ("zk://[::1]:2181,[fe80::1]/x", "[::1]:2181,[fe80::1]:2181", "/x"),
    ],
)
def test_parse_zk_url(url: str, hosts: str, path: str) -> None:
    assert parse_zk_url(url) == ZkTarget(hosts, path)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:2181/aurora", "is not a ZooKeeper URL"),
        ("127.0.0.1:2181/aurora", "is not a ZooKeeper URL"),
        ("zk:///aurora", "no ZooKeeper host"),
        ("zk://a:1,,b:2/x", "empty host"),
        ("zk://h:0/x", "bad port '0'"),
        ("zk://h:65536/x", "bad port '65536'"),
        ("zk://h:http/x", "bad port 'http'"),
        ("zk://h:/x", "empty port"),
        ("zk://bad host:1/x", "bad host 'bad host'"),
        ("zk://[::1/x", "bad host"),
        ("zk://h:1/a//b", "bad znode path"),
        ("zk://h:1/a/../b", "bad znode path"),
        ("zk://h:1/a?x=1", "no query"),
    ],
)
def test_bad_zk_urls_name_the_url_and_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_zk_url(url)
    message = str(info.value)
    assert problem in message
    assert repr(url) in message


def test_credentials_in_a_url_are_refused_and_never_echoed() -> None:
    with pytest.raises(ValueError) as info:
        parse_zk_url("zk://alice:hunter2@h:2181/aurora")
    assert "credentials do not belong" in str(info.value)
    assert "hunter2" not in str(info.value) and "alice" not in str(info.value)
    assert "***@h:2181" in str(info.value)


def test_split_credentials() -> None:
    assert split_credentials("alice:pa:ss\n") == ("alice", "pa:ss")
    for bad in ("alice", ":pw", "alice:", "al ice:pw"):
        with pytest.raises(ValueError) as info:
            split_credentials(bad, "zookeeper.credentials")
        assert str(info.value).startswith("zookeeper.credentials: ")
        assert "pw" not in str(info.value)


def test_check_name() -> None:
    assert check_name("www-data", "role") == "www-data"
    for bad in ("", ".", "..", "a/b", "tab\there"):
        with pytest.raises(ValueError, match="role"):
            check_name(bad, "role")


def test_member_json_is_aurora_serverset_shape() -> None:
    data = member_data("node-a", 31001, {"http": 31001, "admin": 31002}, 2)
    assert json.loads(data) == {
        "serviceEndpoint": {"host": "node-a", "port": 31001},
        "additionalEndpoints": {
            "admin": {"host": "node-a", "port": 31002},
            "http": {"host": "node-a", "port": 31001},
        },
        "status": "ALIVE",
        "shard": 2,
    }
    member = decode_member(data)
    assert member is not None
    assert member.summary() == "node-a:31001 shard=2 ALIVE admin,http"
    assert decode_member(b"not json") is None
    assert decode_member(b'{"serviceEndpoint": {"host": "h"}}') is None
