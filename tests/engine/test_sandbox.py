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
    wait_until((sandbox / "sub" / "f").exists)
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
