"""The volume parsers (``dshell.volumes``): names, sizes, ``NAME:PATH[:ro]``, service volumes;
and UNSUPPORTED for backends without volumes (the fake backend)."""

from __future__ import annotations

import pytest
from dshell.backend import Mount
from dshell.errors import ExitCode, UsageError
from dshell.namespace import MountTable
from dshell.testing.fixtures import CliRunner
from dshell.volumes import (
    VolumeRef,
    check_name,
    instance_volume_name,
    parse_ref,
    parse_service_volume,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("db:data", VolumeRef("db", "data", False)),
        ("db:data:ro", VolumeRef("db", "data", True)),
        ("db:data:rw", VolumeRef("db", "data", False)),
        ("db:./data/sub/", VolumeRef("db", "data/sub", False)),
        ("db:/srv/db:ro", VolumeRef("db", "/srv/db", True)),
        ("kv#0-data:state", VolumeRef("kv#0-data", "state", False)),
        ("db:a:b", VolumeRef("db", "a:b", False)),  # only a last ro/rw is a mode
    ],
)
def test_parse_ref(text: str, ref: VolumeRef) -> None:
    assert parse_ref(text) == ref
    assert parse_ref(str(ref)) == ref  # the canonical form reads back


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("db", "expected NAME:PATH"),
        (":data", "a volume name is required"),
        ("db:", "container path is empty"),
        ("db::ro", "the container path is empty"),
        ("a/b:data", "'/' and '..' are not allowed"),
        ("a..b:data", "'/' and '..' are not allowed"),
        ("-x:data", "bad volume name"),
        ("db:../up", "'..' is not allowed"),
        ("db:data/../../up", "'..' is not allowed"),
        ("db:/", "over '/'"),
        ("db:.", "not the sandbox"),
        ("db:stdout", "would hide the sandbox's stdout"),
        ("db:.dshell/x", "would hide"),
    ],
)
def test_parse_ref_refuses(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(text)
    assert why in info.value.message
    assert info.value.code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("text", "mib"), [("128M", 128), ("1G", 1024), ("512", 512), ("1.5g", 1536), ("2048K", 2)]
)
def test_parse_size(text: str, mib: float) -> None:
    assert parse_size(text) == mib


@pytest.mark.parametrize("text", ["0", "-5", "-5M", "lots", "", "1X", "0M", "nan", "inf"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_names() -> None:
    assert check_name("db-1.a_b#2") == "db-1.a_b#2"
    for bad in ("", "a/b", "..", "a..b", ".hidden", "x" * 129, "sp ace"):
        with pytest.raises(UsageError):
            check_name(bad)


def test_service_volumes() -> None:
    assert parse_service_volume("data:128M") == ("data", 128)
    for bad in ("data", "a/b:1G", "data:0", "data:-1", ":1G", "../x:1G"):
        with pytest.raises(UsageError):
            parse_service_volume(bad)
    assert instance_volume_name("/shop/db", 2, "pgdata") == "shop.db#2-pgdata"
    assert instance_volume_name("web", 0, "a b") == "web#0-a_b"
    check_name(instance_volume_name("/a..b/c", 0, "data"))  # always a valid name


def test_backends_without_volumes_answer_unsupported(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    caps = {"caps": "tasks,agents,run,kill"}
    MountTable().update(
        lambda ms: [*ms, Mount(target="/hpc", type="fake", source="fake", options=caps)]
    )
    for line in (
        "vol ls --on /hpc",
        "vol rm db --on /hpc",
        "mount -t volume -o size=1G db /hpc/vol/db",
        "umount /hpc/vol/db",
        "run -d --on /hpc --volume db:data -- true",
    ):
        res = cli(line)
        assert res.status == ExitCode.UNSUPPORTED, f"{line}: {res.status} {res.stderr}"
        assert "persistent volumes" in res.stderr, line
