"""The early start's saved plan (dshell.prestart): made again whenever what it was made from
changes, never trusted when unreadable, and the same mounts as the table itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from dshell import prestart, xdg
from dshell.backend import Mount
from dshell.fastpath import start_listings
from dshell.namespace import MountTable

FAKE = "fake=dshell.testing.fake:FakeBackend"


def _plan_of(mounts: list[Mount]) -> list[tuple[Any, ...]]:
    MountTable().update(lambda _: mounts)
    key = prestart.key()
    assert key is not None
    assert prestart.load(key) is None  # the table just changed: no plan for it yet
    assert start_listings(["ps", "/", "-o", "tsv"]) is not None  # plans (the registry is made)
    plan = prestart.load(key)
    assert plan is not None
    return [p.fields() for p in plan]


@pytest.fixture
def env(dshell_dirs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", FAKE)
    monkeypatch.delenv("DSHELL_NO_FASTPATH", raising=False)


def test_the_plan_is_the_table_with_each_types_package(env: None) -> None:
    plan = _plan_of(
        [
            Mount(target="/f", type="fake", source="x", options={"a": "1"}),
            Mount(target="/u", type="unknown", source="y"),
        ]
    )
    assert plan == [
        ("/f", "fake", "x", {"a": "1"}, "dshell"),
        ("/u", "unknown", "y", {}, None),  # no such backend: nothing to start
    ]


def test_a_changed_table_backends_or_interpreter_path_makes_a_new_plan(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plan_of([Mount(target="/f", type="fake", source="x")])
    key = prestart.key()
    assert key is not None and prestart.load(key) is not None
    table = Path(xdg.mount_table())
    table.write_text(table.read_text().replace('"x"', '"y"'))  # a hand edit, the same size
    assert prestart.key() != key and prestart.load(prestart.key() or ()) is None
    key = prestart.key()
    assert key is not None
    start_listings(["ps", "/", "-o", "tsv"])
    assert prestart.load(key) is not None
    monkeypatch.setenv("DSHELL_BACKENDS", FAKE + ",other=dshell.testing.fake:FakeBackend")
    assert prestart.load(prestart.key() or ()) is None
    monkeypatch.setenv("DSHELL_BACKENDS", FAKE)
    monkeypatch.setattr(sys, "path", [*sys.path, "/nonexistent-dir"])  # an installed dist
    assert prestart.load(prestart.key() or ()) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",  # empty
        b"\x00garbage",  # not marshal
        None,  # a marshalled value of the wrong shape (filled in below)
        "rows",  # the right key, rows of the wrong types (filled in below)
    ],
)
def test_an_unreadable_or_foreign_plan_is_not_used(env: None, content: Any) -> None:
    import marshal

    _plan_of([Mount(target="/f", type="fake", source="x")])
    key = prestart.key()
    assert key is not None
    if content is None:
        content = marshal.dumps({"not": "a plan"})
    elif content == "rows":
        content = marshal.dumps((key, [("/f", "fake", 3, {}, None)]))
    Path(xdg.state_home(), prestart.CACHE_FILE).write_bytes(content)
    assert prestart.load(key) is None
    # and the next ps plans again and saves a good one
    start_listings(["ps", "/", "-o", "tsv"])
    assert prestart.load(key) is not None


def test_no_table_no_plan(env: None) -> None:
    assert prestart.key() is None
    assert start_listings(["ps", "/", "-o", "tsv"]) is None
