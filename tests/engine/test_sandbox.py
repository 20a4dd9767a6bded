"""Sandbox files: every escape is refused; finished sandboxes are collected."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from dshell.errors import NotFoundError, UsageError
from dshell.model import TaskState

from dshell_local.client import EngineClient
from dshell_local.sandbox import Sandboxes

from .conftest import wait_until
from .helpers import sh

pytestmark = pytest.mark.engine

ESCAPES = {
    "dotdot": "../x/secret",
    "dotdot-inside": "sub/../../x/secret",
    "absolute": "/etc/hostname",
    "sibling": "../{id}-evil/secret",
    "symlink-out": "link",
    "symlink-dir-out": "dirlink/secret",
}


@pytest.fixture
def task_with_traps(engine: EngineClient) -> tuple[EngineClient, str]:
    task = engine.submit(sh("mkdir sub; echo ok > sub/f; sleep 300"))[0]
    sandbox = Path(str(wait_until(lambda: engine.get_task(task.id).sandbox)))
    inner = sandbox / "sub" / "f"
    # its content, not only its existence: the shell creates the file, then writes "ok"
    wait_until(lambda: inner.exists() and inner.read_text() == "ok\n")
    evil = sandbox.parent / f"{task.id}-evil"
    evil.mkdir()
    (evil / "secret").write_text("secret")
    (sandbox.parent / "x").mkdir(exist_ok=True)
    (sandbox.parent / "x" / "secret").write_text("secret")
    os.symlink("/etc/hostname", sandbox / "link")
    os.symlink(str(evil), sandbox / "dirlink")
    return engine, task.id


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_paths_escaping_the_sandbox_are_refused(
    case: str, task_with_traps: tuple[EngineClient, str]
) -> None:
    engine, task_id = task_with_traps
    path = ESCAPES[case].format(id=task_id)
    with pytest.raises(UsageError):
        b"".join(engine.read_file(task_id, path))
    with pytest.raises(UsageError):
        engine.list_files(task_id, path)


def test_inside_paths_and_inner_symlinks_work(task_with_traps: tuple[EngineClient, str]) -> None:
    engine, task_id = task_with_traps
    sandbox = Path(engine.get_task(task_id).sandbox or "")
    os.symlink("sub/f", sandbox / "inner")
    assert b"".join(engine.read_file(task_id, "inner")) == b"ok\n"
    assert b"".join(engine.read_file(task_id, "sub/./f")) == b"ok\n"
    with pytest.raises(NotFoundError):
        b"".join(engine.read_file(task_id, "sub/missing"))


def test_gc_by_age_and_size(tmp_path: Path) -> None:
    boxes = Sandboxes(tmp_path)
    now = time.time()
    for name, size in (("old.1", 10), ("mid.2", 4000), ("new.3", 4000)):
        boxes.create(name)
        (tmp_path / name / "stdout").write_bytes(b"x" * size * 1024)
    finished = [("old.1", now - 1000), ("mid.2", now - 50), ("new.3", now - 10)]
    removed = boxes.gc(finished, max_age=500, max_bytes=5000 * 1024, now=now)
    assert removed == ["old.1", "mid.2"]
    assert (tmp_path / "new.3").is_dir() and not (tmp_path / "mid.2").exists()


def test_unwritable_sandbox_root_fails_the_task_not_the_engine(
    engine: EngineClient, tmp_path: Path
) -> None:
    root = tmp_path / "state" / "sandboxes"
    if root.exists():
        os.rename(root, tmp_path / "moved")
    root.write_text("not a directory")
    task = engine.submit(sh("true"))[0]
    done = engine.wait(task.id, 30)
    assert done.state is TaskState.FAILED and done.reason == "REASON_SANDBOX_ERROR"
    assert "cannot create sandbox" in (done.message or "")
    assert engine.ping()


def test_engine_collects_finished_sandboxes(engine_config) -> None:  # type: ignore[no-untyped-def]
    from dshell_local import control

    engine_config("[sandbox]\nmax_age = 0\ngc_interval = 0.1\n")
    control.start()
    with control.client() as c:
        keep = c.submit(sh("sleep 300"))[0]
        gone = c.submit(sh("echo bye"))[0]
        done = c.wait(gone.id, 30)
        wait_until(lambda: not Path(done.sandbox or "").exists(), what="the sandbox to go")
        with pytest.raises(NotFoundError):
            b"".join(c.read_file(gone.id, "stdout"))
        assert Path(str(wait_until(lambda: c.get_task(keep.id).sandbox))).is_dir()
        assert c.get_task(gone.id).state is TaskState.FINISHED  # the record stays


def test_a_finished_sandbox_ends_when_its_task_ended(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"
    boxes = Sandboxes(root)
    for name in ("known.1", "forgotten.2", "running.3"):
        boxes.create(name)
    long_ago = time.time() - 10_000
    for name in ("known.1", "forgotten.2"):  # started long ago; the output's last write too
        for entry in (root / name, root / name / "stdout", root / name / "stderr"):
            os.utime(entry, (long_ago, long_ago))
    os.utime(root / "forgotten.2" / "stderr", (long_ago + 500, long_ago + 500))
    ended = {"known.1": "2026-11-26T01:00:00.000000Z", "gone.9": "2026-11-26T00:00:00.000000Z"}
    finished = dict(boxes.finished({"running.3"}, ended))
    # the engine's record wins; a task it forgot ends at its sandbox's last write
    assert finished == {
        "known.1": dt.datetime(2026, 11, 26, 1, tzinfo=dt.UTC).timestamp(),
        "forgotten.2": pytest.approx(long_ago + 500),
    }


def test_spares_become_sandboxes_and_are_made_again(tmp_path: Path) -> None:
    boxes = Sandboxes(tmp_path / "sandboxes", spares=3)
    spares_dir = tmp_path / "sandbox-spares"
    assert boxes.refill() == 3 and boxes.spare_count() == 3
    inodes = {p.stat().st_ino for p in spares_dir.iterdir()}
    long_ago = time.time() - 10_000
    for spare in spares_dir.iterdir():  # spares made long before a task takes one
        for entry in (spare, spare / "stdout", spare / "stderr"):
            os.utime(entry, (long_ago, long_ago))
    path = boxes.create("t.1", workdir="w")
    assert path.stat().st_ino in inodes  # renamed into place, not made
    assert sorted(os.listdir(path)) == ["stderr", "stdout", "w"]
    assert (path / "stdout").stat().st_size == 0 and (path / "stderr").stat().st_size == 0
    for entry in (path, path / "stdout", path / "stderr"):  # dated by its task, not the spare
        assert entry.stat().st_mtime > long_ago + 9_000
    assert boxes.spare_count() == 2 and len(list(spares_dir.iterdir())) == 2
    # a relaunch keeps its sandbox and what it holds; the spare stays for another task
    (path / "stdout").write_text("first run\n")
    assert boxes.create("t.1") == path and (path / "stdout").read_text() == "first run\n"
    assert boxes.spare_count() == 2
    with boxes.making():
        assert boxes.refill() == 0  # launches first
    assert boxes.refill() == 1 and len(list(spares_dir.iterdir())) == 3


def test_take_spare_renames_one_or_says_there_is_none(tmp_path: Path) -> None:
    """What the engine's loop calls before handing the rest to its file-system threads."""
    boxes = Sandboxes(tmp_path / "sandboxes", spares=2)
    assert boxes.take_spare("t.0") is False  # none made yet
    assert boxes.refill() == 2
    assert boxes.take_spare("t.1") is True
    assert sorted(os.listdir(boxes.path("t.1"))) == ["stderr", "stdout"]
    (boxes.path("t.1") / "stdout").write_text("ran\n")
    assert boxes.take_spare("t.1") is False  # a relaunch keeps its sandbox
    assert (boxes.path("t.1") / "stdout").read_text() == "ran\n"
    assert boxes.spare_count() == 1
    assert boxes.take_spare("t.2") is True and boxes.take_spare("t.3") is False


def test_spares_left_by_an_engine_are_kept_only_as_new(tmp_path: Path) -> None:
    Sandboxes(tmp_path / "sandboxes", spares=4).refill()
    spares_dir = tmp_path / "sandbox-spares"
    spares = sorted(spares_dir.iterdir())
    (spares[0] / "stdout").write_text("x")  # written into
    (spares[1] / "extra").mkdir()  # more than a new sandbox holds
    (spares_dir / "junk").write_text("?")
    again = Sandboxes(tmp_path / "sandboxes", spares=4)
    assert again.adopt_spares() == 2
    assert sorted(spares_dir.iterdir()) == spares[2:]
    assert again.refill() == 2 and len(list(spares_dir.iterdir())) == 4  # new names
    assert Sandboxes(tmp_path / "sandboxes", spares=0).adopt_spares() == 0
    assert list(spares_dir.iterdir()) == []  # spares turned off: all removed


def test_the_engine_launches_into_spares_and_makes_more(engine_config) -> None:  # type: ignore[no-untyped-def]
    from dshell_local import control

    path = engine_config("[sandbox]\nspares = 5\n")
    spares_dir = path.parent.parent / "state" / "sandbox-spares"
    control.start()
    with control.client() as c:
        wait_until(lambda: len(list(spares_dir.glob("spare-*"))) == 5, what="5 spares")
        before = {p.stat().st_ino for p in spares_dir.iterdir()}
        done = c.wait(c.submit(sh("echo hello"))[0].id, 30)
        assert done.state is TaskState.FINISHED
        assert Path(done.sandbox or "").stat().st_ino in before
        assert b"".join(c.read_file(done.id, "stdout")) == b"hello\n"
        wait_until(lambda: len(list(spares_dir.glob("spare-*"))) == 5, what="made again")


def test_the_pool_grows_to_the_largest_burst_up_to_the_cap(tmp_path: Path) -> None:
    boxes = Sandboxes(tmp_path / "sandboxes", spares=100)
    assert boxes.spares_target == 64  # SPARES_START
    boxes.grow(80)
    assert boxes.spares_target == 80
    boxes.grow(10)  # a smaller burst does not shrink it
    assert boxes.spares_target == 80
    boxes.grow(500)
    assert boxes.spares_target == 100  # the cap
    assert boxes.refill() == 100
    again = Sandboxes(tmp_path / "sandboxes", spares=1000)
    assert again.adopt_spares() == 100 and again.spares_target == 100  # it keeps its size
    assert Sandboxes(tmp_path / "sandboxes", spares=30).adopt_spares() == 30  # a lower cap
