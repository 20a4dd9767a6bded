"""The mount table and path resolution."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest
from dshell.backend import Mount
from dshell.errors import ConfigError, ConflictError, NotFoundError, UsageError
from dshell.namespace import (
    MountTable,
    check_target,
    children,
    normpath,
    parse_options,
    resolve,
)
from dshell.nspath import mounts_under

MOUNTS = [
    Mount(target="/local", type="local"),
    Mount(target="/local/fw/team-a", type="local"),
    Mount(target="/hpc", type="slurm"),
    Mount(target="/sites/east", type="fake"),
]


@pytest.mark.parametrize(
    ("path", "cwd", "want"),
    [
        ("a/b", "/x", "/x/a/b"),
        ("..", "/", "/"),
        ("/a//b/../c", "/", "/a/c"),
        (".", "/q", "/q"),
        ("../../..", "/a", "/"),
    ],
)
def test_normpath(path: str, cwd: str, want: str) -> None:
    assert normpath(path, cwd) == want


def test_resolve_longest_prefix() -> None:
    r = resolve(MOUNTS, "/local/fw/team-a/tasks/x")
    assert r.mount is not None and r.mount.target == "/local/fw/team-a" and r.rest == "tasks/x"
    r = resolve(MOUNTS, "/local/tasks/x/stdout")
    assert (
        r.mount is not None and r.mount.target == "/local" and r.parts == ["tasks", "x", "stdout"]
    )
    assert resolve(MOUNTS, "/localx").mount is None
    assert resolve(MOUNTS, "/").mount is None


def test_mounts_under_root_spans_all() -> None:
    assert [m.target for m in mounts_under(MOUNTS, "/")] == [m.target for m in MOUNTS]
    assert [m.target for m in mounts_under(MOUNTS, "/sites")] == ["/sites/east"]
    assert [m.target for m in mounts_under(MOUNTS, "/hpc/tasks")] == ["/hpc"]
    assert children(MOUNTS, "/") == ["hpc", "local", "sites"]


def test_parse_options() -> None:
    assert parse_options("a=1, b=x=y,flag") == {"a": "1", "b": "x=y", "flag": "true"}
    with pytest.raises(UsageError):
        parse_options("=v")


def test_check_target() -> None:
    assert check_target("/hpc/") == "/hpc"
    for bad in ("hpc", "/", "/.."):
        with pytest.raises(UsageError):
            check_target(bad)


def test_default_and_roundtrip(tmp_path, dshell_dirs) -> None:
    table = MountTable(tmp_path / "mounts.toml")
    assert [m.target for m in table.load()] == ["/local"]
    odd = Mount(target="/we ird", type="fake", source='a"b\\c', options={"k": "v=1", "x[y]": "z"})
    table.add(odd)
    assert table.load()[-1] == odd
    table.remove("/local")
    assert [m.target for m in table.load()] == ["/we ird"]
    table.remove("/we ird")
    assert table.load() == []  # an emptied table stays empty, /local does not come back


def test_add_remove_errors(tmp_path, dshell_dirs) -> None:
    table = MountTable(tmp_path / "mounts.toml")
    with pytest.raises(ConflictError):
        table.add(Mount(target="/local", type="local"))
    with pytest.raises(NotFoundError):
        table.remove("/nope")
    table.add(Mount(target="/local/fw/a", type="local"))
    with pytest.raises(ConflictError):
        table.remove("/local")


def test_bad_file_names_file_and_field(tmp_path, dshell_dirs) -> None:
    path = tmp_path / "mounts.toml"
    path.write_text('[[mount]]\ntarget = "/x"\n')
    with pytest.raises(ConfigError, match=r"mounts.toml: mount #1: field 'type'"):
        MountTable(path).load()


def _adder(path: str, prefix: str, n: int) -> None:
    table = MountTable(__import__("pathlib").Path(path))
    for i in range(n):
        table.add(Mount(target=f"/{prefix}{i}", type="fake"))


def test_concurrent_writers_lose_nothing(tmp_path, dshell_dirs) -> None:
    """Two processes (two REPLs) adding mounts at once: every mount is kept."""
    path = str(tmp_path / "mounts.toml")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_adder, args=(path, p, 25)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    targets = {m.target for m in MountTable(__import__("pathlib").Path(path)).load()}
    assert targets == {"/local"} | {f"/{p}{i}" for p in "ab" for i in range(25)}
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".mounts.")]  # no temp left


def test_the_parsed_table_is_kept_and_follows_every_change(
    tmp_path, dshell_dirs, monkeypatch
) -> None:
    """Reading the table costs no TOML parse while the file is unchanged; any change to the
    file (dshell's own writes, a hand edit, even one of the same size) is read again."""
    from dshell import namespace

    path = tmp_path / "mounts.toml"
    table = MountTable(path)
    table.add(Mount(target="/a", type="fake", options={"k": "v"}))
    parses: list[str] = []
    real_parse = namespace.parse_table

    def counting(text: str, where: str) -> list[Mount]:
        parses.append(where)
        return real_parse(text, where)

    monkeypatch.setattr(namespace, "parse_table", counting)
    want = [
        Mount(target="/local", type="local", source="localhost"),
        Mount(target="/a", type="fake", options={"k": "v"}),
    ]
    assert table.load() == want and parses == []  # dshell's own write kept what it wrote
    text = path.read_text()
    path.write_text(text.replace('"/a"', '"/b"'))  # a hand edit in place, the same size
    assert [m.target for m in table.load()] == ["/local", "/b"] and len(parses) == 1
    assert [m.target for m in table.load()] == ["/local", "/b"] and len(parses) == 1  # kept
    (dshell_dirs.state / namespace.TABLE_CACHE).write_bytes(b"\x00torn")
    assert [m.target for m in table.load()] == ["/local", "/b"] and len(parses) == 2
    path.write_text('[[mount]]\ntarget = "/x"\n')  # an error is reported every time
    for _ in range(2):
        with pytest.raises(ConfigError, match="field 'type'"):
            table.load()
