"""Tasks through the real engine: run, ps, inspect, kill, wait, output, files, ports, env."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from dshell.errors import ConflictError, NotFoundError, TimeoutExpired, UsageError
from dshell.model import Resources, TaskState
from dshell.testing.fixtures import CliRunner

from dshell_local.client import EngineClient

from .conftest import wait_until
from .helpers import output, sh, spec

pytestmark = pytest.mark.engine


def test_run_ps_inspect_wait_output(engine: EngineClient) -> None:
    ok = engine.submit(sh("echo out; echo err >&2"))[0]
    bad = engine.submit(spec("sh", "-c", "exit 3", name="bad"))[0]
    assert ok.state is TaskState.STAGING and ok.id.startswith("echo.")
    assert bad.name == "bad" and bad.instance == 0
    done = engine.wait(ok.id, 30)
    assert done.state is TaskState.FINISHED and done.exit_code == 0
    assert [h.state for h in done.history] == ["STAGING", "STARTING", "RUNNING", "FINISHED"]
    assert output(engine, ok.id) == b"out\n"
    assert output(engine, ok.id, "stderr") == b"err\n"
    failed = engine.wait(bad.id, 30)
    assert failed.state is TaskState.FAILED and failed.exit_code == 3
    assert failed.reason == "REASON_COMMAND_EXECUTOR_FAILED"
    assert {t.id for t in engine.list_tasks(all=True)} >= {ok.id, bad.id}
    assert ok.id not in {t.id for t in engine.list_tasks()}
    assert [t.id for t in engine.list_tasks(all=True, states=["FAILED"])] == [bad.id]
    with pytest.raises(NotFoundError):
        engine.get_task("nope.0000000000")


def test_env_of_a_task(engine: EngineClient) -> None:
    task = engine.submit(sh("env", env={"GREETING": "hi"}, ports=["http", ""]))[0]
    done = engine.wait(task.id, 30)
    env = dict(
        line.split("=", 1) for line in output(engine, task.id).decode().splitlines() if "=" in line
    )
    assert env["GREETING"] == "hi"
    assert env["DSHELL_TASK_ID"] == task.id
    assert env["DSHELL_SANDBOX"] == env["MESOS_SANDBOX"] == done.sandbox
    assert env["DSHELL_AGENT_ID"] == "local" and env["HOST"] == done.hostname
    ports = [p.port for p in done.ports]
    assert env["PORT0"] == env["PORT_HTTP"] == env["PORT"] == str(ports[0])
    assert env["PORT1"] == str(ports[1])
    assert all(31000 <= p <= 32000 for p in ports)


def test_ports_unique_across_running_tasks(engine: EngineClient) -> None:
    tasks = engine.submit(spec("sleep", "300", ports=["a", "b", "c"], instances=10))
    for t in tasks:
        wait_until(lambda t=t: engine.get_task(t.id).state is TaskState.RUNNING)
    ports = [p.port for t in tasks for p in engine.get_task(t.id).ports]
    assert len(ports) == 30 and len(set(ports)) == 30


def test_kill_term_grace_then_sigkill(engine: EngineClient) -> None:
    polite = engine.submit(sh("trap 'exit 7' TERM; echo ready; sleep 300 & wait"))[0]
    stubborn = engine.submit(sh("trap '' TERM; echo ready; sleep 300 & wait"))[0]
    for t in (polite, stubborn):
        wait_until(lambda t=t: b"ready" in output(engine, t.id), what="the trap to be set")
    engine.kill(polite.id, grace=30)
    engine.kill(stubborn.id, grace=0.5)
    first = engine.wait(polite.id, 30)
    assert first.state is TaskState.KILLED and first.exit_code == 7
    second = engine.wait(stubborn.id, 30)
    assert second.state is TaskState.KILLED and second.signal == signal.SIGKILL
    assert [h.state for h in second.history][-2:] == ["KILLING", "KILLED"]
    assert engine.kill(first.id).state is TaskState.KILLED  # idempotent on a finished task


def test_signal_sends_one_signal(engine: EngineClient) -> None:
    task = engine.submit(sh("trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done"))[
        0
    ]
    wait_until(lambda: b"ready" in output(engine, task.id), what="the trap to be set")
    engine.signal(task.id, signal.SIGUSR1)
    wait_until(lambda: b"got-usr1" in output(engine, task.id), what="the trap's output")
    assert engine.get_task(task.id).state is TaskState.RUNNING
    engine.kill(task.id, grace=1)
    assert engine.wait(task.id, 30).state is TaskState.KILLED
    with pytest.raises(ConflictError):
        engine.signal(task.id, signal.SIGUSR1)


def test_kill_before_launch_and_wait_timeout(engine_config, engine_dirs: Path) -> None:  # type: ignore[no-untyped-def]
    engine_config("[[agents]]\ncpus = 1\nmem = 256\ndisk = 100\n")
    from dshell_local import control

    control.start()
    with control.client() as c:
        hog = c.submit(spec("sleep", "300", resources=Resources(cpus=1, mem=8)))[0]
        waiting = c.submit(spec("true", resources=Resources(cpus=0.5, mem=8)))[0]
        wait_until(lambda: c.get_task(waiting.id).message, what="a pending reason")
        pending = c.get_task(waiting.id)
        assert pending.state is TaskState.STAGING
        assert pending.reason == "REASON_WAITING_FOR_RESOURCES"
        assert "cpus 0.5 > free 0" in (pending.message or "")
        with pytest.raises(TimeoutExpired):
            c.wait(waiting.id, 0.2)
        killed = c.kill(waiting.id)
        assert killed.state is TaskState.KILLED and killed.message == "killed before launch"
        c.kill(hog.id, grace=0.5)
        assert c.wait(hog.id, 30).state is TaskState.KILLED


def test_staging_task_runs_when_resources_free_up(engine_config) -> None:  # type: ignore[no-untyped-def]
    engine_config("[[agents]]\ncpus = 1\nmem = 256\ndisk = 100\n")
    from dshell_local import control

    control.start()
    with control.client() as c:
        hog = c.submit(spec("sleep", "300", resources=Resources(cpus=1, mem=8)))[0]
        later = c.submit(spec("true", resources=Resources(cpus=1, mem=8)))[0]
        wait_until(lambda: c.get_task(later.id).message)
        c.kill(hog.id, grace=0.5)
        done = c.wait(later.id, 30)
        assert done.state is TaskState.FINISHED
        assert done.history[0].state == "STAGING" and done.history[1].state == "STARTING"


def test_never_fits_is_refused(engine: EngineClient) -> None:
    with pytest.raises(UsageError, match="no agent can ever hold"):
        engine.submit(spec("true", resources=Resources(cpus=10_000)))
    with pytest.raises(UsageError, match="no agent can ever hold"):
        engine.submit(spec("true", ports=[str(i) for i in range(1200)]))
    with pytest.raises(UsageError):
        engine.submit(spec("true", instances=0))
    assert engine.list_tasks(all=True) == []


def test_idempotency_key_never_launches_twice(engine: EngineClient, tmp_path: Path) -> None:
    log = tmp_path / "starts"
    s = sh(f"echo x >> {log}", instances=3, idempotency_key="deploy-1")
    first = engine.submit(s)
    second = engine.submit(s)
    assert [t.id for t in first] == [t.id for t in second]
    for t in first:
        engine.wait(t.id, 30)
    third = engine.submit(s)
    assert [t.id for t in third] == [t.id for t in first]
    assert log.read_text().count("x") == 3


def test_ids_are_unique_and_ordered(engine: EngineClient) -> None:
    tasks = engine.submit(spec("true", instances=50))
    ids = [t.id for t in tasks]
    assert len(set(ids)) == 50 and ids == sorted(ids)
    assert [t.instance for t in tasks] == list(range(50))
    assert all(t.name == "true" for t in tasks)


def test_list_files_of_running_and_finished(engine: EngineClient) -> None:
    task = engine.submit(sh("mkdir -p sub && echo data > sub/f && sleep 300"))[0]
    # the content, not the file's existence: the shell creates it before it writes "data"
    box = lambda: Path(engine.get_task(task.id).sandbox or "/nonexistent", "sub/f")  # noqa: E731
    wait_until(lambda: box().exists() and box().read_bytes() == b"data\n")
    names = {e.name for e in engine.list_files(task.id)}
    assert {"stdout", "stderr", "sub"} <= names
    assert [e.name for e in engine.list_files(task.id, "sub")] == ["f"]
    assert b"".join(engine.read_file(task.id, "sub/f")) == b"data\n"
    assert b"".join(engine.read_file(task.id, "sub/f", offset=2)) == b"ta\n"
    engine.kill(task.id, grace=0.5)
    engine.wait(task.id, 30)
    assert b"".join(engine.read_file(task.id, "sub/f")) == b"data\n"


def test_follow_output_until_the_task_ends(engine: EngineClient) -> None:
    task = engine.submit(sh("for i in 1 2 3; do echo $i; sleep 0.2; done"))[0]
    wait_until(lambda: engine.get_task(task.id).sandbox)
    data = b"".join(engine.read_file(task.id, "stdout", follow=True))
    assert data == b"1\n2\n3\n"
    assert engine.get_task(task.id).state is TaskState.FINISHED


def test_attach_streams_output_then_exit(engine: EngineClient) -> None:
    from dshell_local import api

    task = engine.submit(sh("echo a; echo b >&2; sleep 0.2; echo c; exit 4"))[0]
    frames = list(engine.attach(task.id))
    out = b"".join(p for k, p in frames if k == api.FRAME_STDOUT)
    err = b"".join(p for k, p in frames if k == api.FRAME_STDERR)
    assert out == b"a\nc\n" and err == b"b\n"
    kind, payload = frames[-1]
    assert kind == api.FRAME_EXIT and b'"status":4' in payload


def test_wait_without_timeout_outlasts_the_client_timeout(engine: EngineClient) -> None:
    task = engine.submit(spec("sleep", "2"))[0]
    with EngineClient(engine.socket_path, timeout=0.5) as short:
        assert short.wait(task.id).state is TaskState.FINISHED


def test_attached_run_of_a_command_that_cannot_start(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    """As docker run: 127 when the command is not found, 126 when it is not executable, and
    the reason on stderr (the task never had an exit status of its own)."""
    res = cli("run -- /nonexistent/program")
    assert res.status == 127, res.stderr
    assert "No such file or directory" in res.stderr and "/tasks/" in res.stderr
    plain = tmp_path / "not-executable"
    plain.write_text("echo never\n")
    res = cli(f"run -- {plain}")
    assert res.status == 126, res.stderr
    assert "not executable" in res.stderr
