"""`run -it` on the embedded engine: a tty task with the user's terminal attached."""

from __future__ import annotations

import os
import sys
import threading

import pexpect
import pytest
from dshell.backend import Mount
from dshell.errors import ConflictError
from dshell.model import TaskState

from dshell_local import api
from dshell_local.backend import LocalBackend, LocalExecHandle
from dshell_local.client import EngineClient

from .conftest import wait_until
from .helpers import sh, spec

pytestmark = pytest.mark.engine

TIMEOUT = 20.0


def test_run_interactive_feeds_stdin_streams_the_terminal_and_returns_the_status(
    engine: EngineClient,
) -> None:
    backend = LocalBackend(Mount(target="/local", type="local"))
    handle = backend.run_interactive(spec("sh", "-c", "read x; echo got-$x; exit 3"))
    seen: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        seen.extend(chunk.data for chunk in handle.chunks())
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    handle.resize(30, 100)
    handle.write_stdin(b"hello\n")
    assert done.wait(TIMEOUT), f"no exit frame; output so far: {b''.join(seen)!r}"
    assert b"got-hello" in b"".join(seen)
    assert handle.status() == 3
    handle.close()
    task = engine.list_tasks(all=True)[-1]
    assert task.state is TaskState.FAILED and task.exit_code == 3
    backend.close()


def _attach_path(task_id: str) -> str:
    return f"{api.API_PREFIX}/tasks/{task_id}/attach?interactive=1"


def test_interactive_attach_refuses_a_task_without_a_terminal(engine: EngineClient) -> None:
    task = engine.submit(spec("sleep", "300"))[0]
    wait_until(lambda: engine.get_task(task.id).state is TaskState.RUNNING, TIMEOUT)
    with pytest.raises(ConflictError, match="no terminal"):
        LocalExecHandle(engine.socket_path, _attach_path(task.id))
    engine.kill(task.id, grace=0)
    done = engine.submit(sh("true", tty=True))[0]
    engine.wait(done.id, TIMEOUT)
    with pytest.raises(ConflictError, match="has ended"):
        LocalExecHandle(engine.socket_path, _attach_path(done.id))


def test_dshell_run_it_in_a_real_terminal(engine: EngineClient) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DSHELL_MOUNT"}
    env["TERM"] = "dumb"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "dshell", "run", "-it", "--", "sh"],
        env=env,
        timeout=TIMEOUT,
        dimensions=(24, 80),
    )
    try:
        # type after the prompt: dshell's switch to raw mode flushes earlier typeahead
        child.expect(r"[#$] ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 5, child.before
