"""Engine daemon lifecycle: start/stop/status, one engine per user, re-adoption, peer creds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dshell.errors import BackendError, ConfigError, UsageError
from dshell.model import Resources, TaskState

from dshell_local import api, control
from dshell_local.client import EngineClient

from .conftest import need, pid_alive, wait_until
from .helpers import output, sh, spec

pytestmark = pytest.mark.engine


def test_start_status_stop(engine_dirs: Path) -> None:
    assert control.status() is None
    first = control.start()
    assert first is not None and pid_alive(first.pid)
    again = control.start()
    assert again is not None and again.pid == first.pid
    status = control.status()
    assert status is not None
    assert status.socket == str(engine_dirs / api.SOCKET_NAME)
    assert status.isolation.kind in ("cgroup-v1", "cgroup-v2", "rlimit")
    assert oct((engine_dirs / api.SOCKET_NAME).stat().st_mode & 0o777) == "0o600"
    assert control.stop() is True
    assert not pid_alive(first.pid)
    assert control.status() is None
    assert control.stop() is False


def test_two_concurrent_first_uses_start_one_engine(engine_dirs: Path, tmp_path: Path) -> None:
    code = "from dshell_local import control; print(control.start().pid)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    pids = {int(p.communicate(timeout=60)[0]) for p in procs}
    assert len(pids) == 1
    log = (tmp_path / "state" / "logs" / "engine.log").read_text()
    assert log.count("listening on") == 1


def test_stop_leaves_tasks_running_and_start_readopts(engine: EngineClient) -> None:
    task = engine.submit(spec("sleep", "300"))[0]
    running = wait_until(lambda: engine.get_task(task.id).pid, what="pid")
    assert isinstance(running, int)
    control.stop()
    assert pid_alive(running)
    status = control.start()
    assert status is not None and status.recovery == {"adopted": 1}
    again = engine.get_task(task.id)
    assert again.state is TaskState.RUNNING and again.pid == running
    assert [h.state for h in again.history].count("RUNNING") == 1
    killed = engine.kill(task.id, grace=1)
    # `sleep` dies of the SIGTERM at once: its exit may be recorded before kill answers
    assert killed.state in (TaskState.KILLING, TaskState.KILLED)
    assert engine.wait(task.id, 30).state is TaskState.KILLED
    assert not pid_alive(running)


def test_stop_kill_tasks(engine: EngineClient) -> None:
    task = engine.submit(sh("trap 'exit 42' TERM; echo ready; sleep 300 & wait"))[0]
    wait_until(lambda: b"ready" in output(engine, task.id), what="the trap to be set")
    pid = wait_until(lambda: engine.get_task(task.id).pid, what="its pid")
    assert isinstance(pid, int)
    control.stop(kill_tasks=True)
    assert not pid_alive(pid)
    control.start()
    done = engine.get_task(task.id)
    assert done.state is TaskState.KILLED
    assert done.exit_code == 42


def test_peer_with_another_uid_is_refused(engine: EngineClient, engine_dirs: Path) -> None:
    need(os.getuid() == 0, "switching to uid nobody needs root")
    # open the file-system fences so that only SO_PEERCRED stands in the way
    os.chmod(engine_dirs, 0o711)
    os.chmod(engine_dirs / api.SOCKET_NAME, 0o666)
    code = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "s.sendall(b'GET /v1/tasks HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "data = b''\n"
        "while chunk := s.recv(4096): data += chunk\n"
        "print(data.split(b'\\r\\n')[0].decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(engine_dirs / api.SOCKET_NAME)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert " 403 " in out.stdout
    assert engine.ping()  # and the engine is fine


def test_overlapping_port_ranges_are_a_config_error(engine_config) -> None:  # type: ignore[no-untyped-def]
    path = engine_config(
        '[[agents]]\nid = "a"\nports = [[31000, 31100]]\n'
        '[[agents]]\nid = "b"\nports = [[31050, 31200]]\n'
    )
    with pytest.raises(ConfigError) as err:
        control.start()
    assert str(path) in str(err.value) and "'a'" in str(err.value) and "'b'" in str(err.value)


def test_several_agents_with_attributes(engine_config, engine_dirs: Path) -> None:  # type: ignore[no-untyped-def]
    engine_config(
        '[[agents]]\nid = "a1"\nhostname = "node-a"\ncpus = 1\nmem = 256\ndisk = 100\n'
        'ports = [[31000, 31009]]\nattributes = { rack_id = "r1" }\n'
        '[[agents]]\nid = "a2"\nhostname = "node-b"\ncpus = 1\nmem = 256\ndisk = 100\n'
        'ports = [[31010, 31019]]\nattributes = { rack_id = "r2" }\n'
    )
    control.start()
    with control.client() as c:
        agents = {a.id: a for a in c.agents()}
        assert agents["a1"].hostname == "node-a" and agents["a1"].attributes == {"rack_id": "r1"}
        assert agents["a2"].port_ranges == [(31010, 31019)]
        tasks = c.submit(
            spec("sh", "-c", "echo $HOST", instances=2, resources=Resources(cpus=1, mem=8))
        )
        done = [c.wait(t.id, 30) for t in tasks]
        assert {t.hostname for t in done} == {"node-a", "node-b"}
        with pytest.raises(UsageError, match="no agent can ever"):
            c.submit(spec("true", resources=Resources(cpus=2)))


def test_a_failed_start_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "state" / "engine.db").mkdir(parents=True)  # the database cannot be opened
    with pytest.raises(BackendError, match="dshell engine failed"):
        control.start(timeout=120)
    assert control.status() is None


def test_isolation_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHELL_ISOLATION", "none")
    status = control.start()
    assert status is not None and status.isolation.kind == "rlimit"
    monkeypatch.setenv("DSHELL_ISOLATION", "bogus")
    control.stop()
    with pytest.raises(ConfigError, match="isolation"):
        control.start()


def test_a_removed_runtime_dir_is_made_again_by_the_running_engine(engine_dirs: Path) -> None:
    import shutil

    first = control.start()
    assert first is not None
    with control.client() as c:
        task = c.submit(spec("sleep", "300"))[0]
        pid = wait_until(lambda: c.get_task(task.id).pid, what="its pid")
    shutil.rmtree(engine_dirs)  # what systemd-logind does to $XDG_RUNTIME_DIR at logout
    # the next use finds the same engine again, not a second one on the same state dir
    again = control.start()
    assert again is not None and again.pid == first.pid
    assert (engine_dirs / api.SOCKET_NAME).stat().st_mode & 0o777 == 0o600
    with control.client() as c:
        assert c.get_task(task.id).state is TaskState.RUNNING
    # the executor made its socket and journal again: a restarted engine finds the task
    wait_until((engine_dirs / "executor.sock").exists, what="the executor's socket")
    control.stop()
    status = control.start()
    assert status is not None and status.recovery == {"adopted": 1}
    assert pid_alive(int(str(pid)))


def test_one_engine_per_state_dir(engine: EngineClient, engine_dirs: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-runtime"
    other.mkdir(mode=0o700)
    env = {**os.environ, "DSHELL_RUNTIME_DIR": str(other)}
    res = subprocess.run(
        [sys.executable, "-m", "dshell_local.daemon"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 1
    assert f"the engine (pid {control.status().pid})" in res.stderr  # type: ignore[union-attr]
    assert engine.ping()


def test_a_removed_database_stops_the_engine_and_its_tasks(
    engine: EngineClient, tmp_path: Path
) -> None:
    task = engine.submit(spec("sleep", "300"))[0]
    pid = wait_until(lambda: engine.get_task(task.id).pid, what="its pid")
    engine_pid = control.status().pid  # type: ignore[union-attr]
    for name in ("engine.db", "engine.db-wal", "engine.db-shm"):
        (tmp_path / "state" / name).unlink(missing_ok=True)
    wait_until(lambda: not pid_alive(engine_pid), 30, "the engine to stop")
    assert not pid_alive(int(str(pid)))
