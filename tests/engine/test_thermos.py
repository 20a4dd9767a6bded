"""The Thermos process runner (``dshell_local/thermos.py``): run directly in a temp dir, then
through the engine with an Aurora file.

Processes append ``<name>-start`` / ``<name>-end`` lines to an ``events`` file in the sandbox,
so ordering is checked on the order of events; waits are bounded; no wall-clock assertion.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
from dshell.testing.fixtures import CliRunner

from dshell_local import thermos
from dshell_local.client import EngineClient

from .conftest import wait_until

MARK = 'echo "$DSHELL_PROCESS-start" >> events'
END = 'echo "$DSHELL_PROCESS-end" >> events'


def proc(name: str, body: str = "true", **kw: Any) -> dict[str, Any]:
    """A process that records its start and end around ``body`` (min_duration 0)."""
    kw.setdefault("min_duration", 0)
    return {"name": name, "cmdline": f"{MARK}; {body}; rc=$?; {END}; exit $rc", **kw}


def task(*processes: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"processes": list(processes), **kw}


def start(tmp: Path, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The runner, as the engine starts it, in its own session (for the stray check)."""
    err = open(tmp / "runner.err", "ab")  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen(
            thermos.command(spec),
            cwd=tmp,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        err.close()


def session_members(sid: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def finish(runner: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """The runner's status once it ended; nothing of its session is left."""
    try:
        code = runner.wait(timeout)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    wait_until(lambda: not session_members(runner.pid), 10, "the runner's session to empty")
    return code


def run(tmp: Path, spec: dict[str, Any]) -> int:
    return finish(start(tmp, spec))


def events(tmp: Path) -> list[str]:
    try:
        return (tmp / "events").read_text().split()
    except FileNotFoundError:
        return []


def state(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / ".dshell" / "processes.json").read_text())


def procs(tmp: Path) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in state(tmp)["processes"]}


def proc_state(tmp: Path, name: str) -> str | None:
    """A process's state, None before the runner wrote its first state file."""
    try:
        return procs(tmp)[name]["state"]
    except FileNotFoundError:
        return None


def before(ev: list[str], first: str, then: str) -> bool:
    return ev.index(first) < ev.index(then)


# ---- the runner on its own -------------------------------------------------------------------


def test_order_output_files_and_state(tmp_path: Path) -> None:
    spec = task(
        proc("a", "echo a-out; echo a-err >&2"),
        proc("b", "echo b-out"),
        proc("c", "echo c-out"),
        order=[["a", "b"]],
    )
    assert run(tmp_path, spec) == 0
    ev = events(tmp_path)
    assert before(ev, "a-end", "b-start") and "c-end" in ev
    assert (tmp_path / "a" / "stdout").read_text() == "a-out\n"
    assert (tmp_path / "a" / "stderr").read_text() == "a-err\n"
    assert (tmp_path / "b" / "stdout").read_text() == "b-out\n"
    doc = state(tmp_path)
    assert doc["state"] == "SUCCESS" and doc["finished_at"]
    for p in doc["processes"]:
        assert (p["state"], p["runs"], p["exit_code"], p["pid"]) == ("SUCCESS", 1, 0, None)
        assert p["started_at"] <= p["finished_at"]
    assert not (tmp_path / ".dshell" / "processes.json.tmp").exists()


def test_sequential_task_is_one_chain(tmp_path: Path) -> None:
    names = ["one", "two", "three", "four"]
    spec = task(*(proc(n) for n in names), order=[names])
    assert run(tmp_path, spec) == 0
    assert events(tmp_path) == [f"{n}-{e}" for n in names for e in ("start", "end")]


def test_max_concurrency_bounds_running_processes(tmp_path: Path) -> None:
    spec = task(*(proc(f"p{i}", "sleep 0.2") for i in range(5)), max_concurrency=2)
    assert run(tmp_path, spec) == 0
    running, most = 0, 0
    for e in events(tmp_path):
        running += 1 if e.endswith("-start") else -1
        most = max(most, running)
    assert 1 <= most <= 2  # never more than two at once
    assert len(events(tmp_path)) == 10


def test_retries_up_to_max_failures(tmp_path: Path) -> None:
    # 'flaky' fails twice then succeeds; 'doomed' fails every time, three runs at most.
    flaky = proc("flaky", '[ "$DSHELL_PROCESS_RUN" -ge 3 ]', max_failures=3)
    doomed = proc("doomed", "(exit 7)", max_failures=3)
    assert run(tmp_path, task(flaky, doomed, max_failures=2)) == 0  # one failure tolerated
    p = procs(tmp_path)
    assert (p["flaky"]["state"], p["flaky"]["runs"], p["flaky"]["failures"]) == ("SUCCESS", 3, 2)
    assert (p["doomed"]["state"], p["doomed"]["runs"], p["doomed"]["exit_code"]) == (
        "FAILED",
        3,
        7,
    )
    assert events(tmp_path).count("doomed-start") == 3


def test_max_failures_zero_retries_until_success(tmp_path: Path) -> None:
    spec = task(proc("stubborn", '[ "$DSHELL_PROCESS_RUN" -ge 6 ]', max_failures=0))
    assert run(tmp_path, spec) == 0
    assert procs(tmp_path)["stubborn"]["runs"] == 6


def test_min_duration_between_runs(tmp_path: Path) -> None:
    # 'flaky' fails its first run and may run again only 3 s after; 'marker' waits for that
    # first run to end, so its event comes between the two runs of 'flaky'.
    flaky = proc("flaky", '[ "$DSHELL_PROCESS_RUN" -ge 2 ]', max_failures=2, min_duration=3)
    marker = proc("marker", "until grep -q flaky-end events; do sleep 0.02; done")
    assert run(tmp_path, task(flaky, marker)) == 0
    ev = events(tmp_path)
    assert ev.count("flaky-start") == 2
    second = ev.index("flaky-start", ev.index("flaky-start") + 1)
    assert ev.index("marker-end") < second


def test_daemon_runs_again_after_success(tmp_path: Path) -> None:
    beat = proc("beat", "true", daemon=True, ephemeral=True, min_duration=0.05)
    until = proc("until", 'until [ "$(grep -c beat-end events)" -ge 3 ]; do sleep 0.02; done')
    assert run(tmp_path, task(beat, until)) == 0
    p = procs(tmp_path)
    assert p["beat"]["runs"] >= 3 and p["beat"]["failures"] == 0
    assert p["beat"]["state"] in ("WAITING", "KILLED")  # stopped by the end of the task
    assert state(tmp_path)["state"] == "SUCCESS"


def test_ephemeral_does_not_decide_the_outcome(tmp_path: Path) -> None:
    side = proc("side", "(exit 1)", ephemeral=True)
    forever = {"name": "forever", "cmdline": "exec sleep 1000", "ephemeral": True}
    main = proc("main", "until grep -q side-end events; do sleep 0.02; done")
    assert run(tmp_path, task(side, forever, main)) == 0
    p = procs(tmp_path)
    assert p["side"]["state"] == "FAILED" and p["main"]["state"] == "SUCCESS"
    assert p["forever"]["state"] == "KILLED" and p["forever"]["signal"] == signal.SIGTERM


def test_task_max_failures(tmp_path: Path) -> None:
    bad = proc("bad", "(exit 3)")
    slow = proc("slow", "until grep -q bad-end events; do sleep 0.02; done; exec sleep 1000")
    # The default (1): the task fails as soon as 'bad' failed; 'slow' is stopped.
    assert run(tmp_path, task(bad, slow)) == 1
    p = procs(tmp_path)
    assert p["bad"]["state"] == "FAILED" and p["slow"]["state"] == "KILLED"
    assert state(tmp_path)["state"] == "FAILED"
    # Two failures allowed: one failed process does not fail the task.
    other = tmp_path / "two"
    other.mkdir()
    ok = proc("ok", "until grep -q bad-end events; do sleep 0.02; done")
    assert run(other, task(bad, ok, max_failures=2)) == 0
    assert procs(other)["bad"]["state"] == "FAILED" and state(other)["state"] == "SUCCESS"


def test_a_failed_dependency_fails_the_task(tmp_path: Path) -> None:
    spec = task(proc("a", "(exit 1)"), proc("b"), order=[["a", "b"]], max_failures=5)
    assert run(tmp_path, spec) == 1
    p = procs(tmp_path)
    assert p["a"]["state"] == "FAILED" and (p["b"]["state"], p["b"]["runs"]) == ("WAITING", 0)


def test_final_processes_run_after_the_regular_ones(tmp_path: Path) -> None:
    spec = task(
        proc("a", "sleep 0.1"),
        proc("b"),
        proc("save", final=True),
        proc("upload", final=True),
        order=[["save", "upload"]],
    )
    assert run(tmp_path, spec) == 0
    ev = events(tmp_path)
    assert before(ev, "a-end", "save-start") and before(ev, "b-end", "save-start")
    assert before(ev, "save-end", "upload-start")
    assert {p["state"] for p in procs(tmp_path).values()} == {"SUCCESS"}
    # They run when the task failed, too.
    failed = tmp_path / "failed"
    failed.mkdir()
    assert run(failed, task(proc("a", "(exit 1)"), proc("save", final=True))) == 1
    assert procs(failed)["save"]["state"] == "SUCCESS"


def test_sigterm_stops_regular_processes_then_runs_final_ones(tmp_path: Path) -> None:
    spec = task(
        {"name": "server", "cmdline": "exec sleep 1000", "daemon": True},
        proc("save", "echo saved", final=True),
        finalization_wait=30,
    )
    runner = start(tmp_path, spec)
    wait_until(lambda: proc_state(tmp_path, "server") == "RUNNING", 30, "server")
    runner.send_signal(signal.SIGTERM)
    assert finish(runner) == -signal.SIGTERM
    p = procs(tmp_path)
    assert (p["server"]["state"], p["server"]["signal"]) == ("KILLED", signal.SIGTERM)
    assert p["save"]["state"] == "SUCCESS" and state(tmp_path)["state"] == "KILLED"
    assert (tmp_path / "save" / "stdout").read_text() == "saved\n"


def test_a_process_ignoring_sigterm_is_killed_at_the_finalization_wait(tmp_path: Path) -> None:
    stubborn = {"name": "stubborn", "cmdline": "trap '' TERM; echo up >> events; sleep 1000"}
    spec = task(stubborn, proc("save", final=True), finalization_wait=2.5)
    runner = start(tmp_path, spec)
    wait_until(lambda: "up" in events(tmp_path), 30, "stubborn to start")
    runner.send_signal(signal.SIGTERM)
    assert finish(runner) == -signal.SIGTERM
    p = procs(tmp_path)
    assert (p["stubborn"]["state"], p["stubborn"]["signal"]) == ("KILLED", signal.SIGKILL)
    assert (p["save"]["state"], p["save"]["runs"]) == ("WAITING", 0)  # no time was left


def test_signals_are_passed_on(tmp_path: Path) -> None:
    body = "trap 'echo hup >> events' HUP; echo ready >> events; while :; do sleep 0.05; done"
    runner = start(tmp_path, task({"name": "w", "cmdline": body}, finalization_wait=5))
    wait_until(lambda: "ready" in events(tmp_path), 30, "w to start")
    runner.send_signal(signal.SIGHUP)
    wait_until(lambda: "hup" in events(tmp_path), 30, "w to get SIGHUP")
    runner.send_signal(signal.SIGTERM)
    assert finish(runner) == -signal.SIGTERM


def test_leftovers_of_a_process_group_are_killed(tmp_path: Path) -> None:
    # 'spawner' leaves a background child behind; it must not outlive its process.
    spawner = proc("spawner", "sleep 1000 & echo $! > bg.pid")
    assert run(tmp_path, task(spawner)) == 0
    bg = int((tmp_path / "bg.pid").read_text())
    wait_until(lambda: not psutil.pid_exists(bg) or psutil.Process(bg).status() == "zombie", 10)


def test_state_file_while_running(tmp_path: Path) -> None:
    spec = task(
        {"name": "slow", "cmdline": "exec sleep 1000"},
        proc("after"),
        order=[["slow", "after"]],
        finalization_wait=5,
    )
    runner = start(tmp_path, spec)
    wait_until(lambda: proc_state(tmp_path, "slow") == "RUNNING", 30, "slow to start")
    doc = state(tmp_path)
    p = {x["name"]: x for x in doc["processes"]}
    assert doc["state"] == "ACTIVE" and doc["runner_pid"] == runner.pid
    assert p["slow"]["state"] == "RUNNING" and psutil.pid_exists(p["slow"]["pid"])
    assert os.getpgid(p["slow"]["pid"]) == p["slow"]["pid"]  # its own process group
    assert (p["after"]["state"], p["after"]["runs"]) == ("WAITING", 0)
    runner.send_signal(signal.SIGTERM)
    finish(runner)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (task(proc("a"), proc("a")), "two processes named 'a'"),
        (task(proc("a"), order=[["a", "zz"]]), "no process 'zz'"),
        (task(proc("a"), proc("b"), order=[["a", "b"], ["b", "a"]]), "cycle"),
        (task(proc("d", daemon=True), proc("b"), order=[["d", "b"]]), "daemon"),
        (task(proc("e", ephemeral=True), proc("b"), order=[["e", "b"]]), "ephemeral"),
        (task(proc("a"), proc("f", final=True), order=[["a", "f"]]), "final"),
        (task(proc("stdout")), "the task's own output"),
        (task(proc("../x")), "not a file name"),
        (task(proc("a", max_failures=-1)), "max_failures: must be >= 0"),
        (task(proc("a", daemon="yes")), "daemon: expected true or false"),
        (task(proc("a"), max_concurrency=True), "expected an integer"),
        ({"processes": []}, "non-empty list"),
        (task(proc("a"), colour="red"), "unknown field 'colour'"),
    ],
)
def test_bad_specs_are_refused(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    problem = thermos.problem(spec)
    assert problem is not None and message in problem
    assert run(tmp_path, spec) == 2
    assert message in (tmp_path / "runner.err").read_text()
    assert not (tmp_path / ".dshell").exists()


def test_templates_left_by_the_engine_are_rendered_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT_HTTP", "31234")
    assert run(tmp_path, task(proc("p", "echo {{thermos.ports[http]}}"))) == 0
    assert (tmp_path / "p" / "stdout").read_text() == "31234\n"


def test_the_runner_starts_on_the_standard_library_alone(tmp_path: Path) -> None:
    """What a launch imports, measured with -X importtime: the stdlib only."""
    argv = thermos.command(task(proc("a")))
    res = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    modules = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    assert "json" in modules and "site" not in modules
    assert not {m.split(".")[0] for m in modules} & {"dshell", "dshell_local", "msgspec", "psutil"}


# ---- through the engine ----------------------------------------------------------------------

AURORA = """
setup = Process(name = 'setup',
                cmdline = 'echo setup-start >> events; echo prepared; echo warn >&2')
web = Process(name = 'web',
              cmdline = 'echo web-start >> events; echo port {{thermos.ports[http]}}; '
                        'exec sleep 1000')
save = Process(name = 'save', cmdline = 'echo saved', final = True)
one = Process(name = 'one', cmdline = 'echo one >> events')
two = Process(name = 'two', cmdline = 'echo two >> events')
rest = Process(name = 'rest', cmdline = 'echo rest >> events; exec sleep 1000')
res = Resources(cpu = 0.05, ram = 32*MB, disk = 16*MB)

jobs = [
  Service(cluster = 'local', role = 'me', environment = 'devel', name = 'multi',
          task = Task(processes = [setup, web, save], constraints = order(setup, web),
                      resources = res, finalization_wait = 10)),
  Service(cluster = 'local', role = 'me', environment = 'devel', name = 'chain',
          task = SequentialTask(processes = [one, two, rest], resources = res)),
]
"""


def ok(cli: CliRunner, line: str) -> str:
    res = cli(line)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def instance(cli: CliRunner, name: str) -> dict[str, Any]:
    svc = json.loads(ok(cli, f"svc status {name} -o json"))
    (member,) = svc["members"]
    return member


def shown(cli: CliRunner, task_id: str) -> dict[str, str]:
    doc = json.loads(ok(cli, f"inspect {task_id} -o json"))
    return {p["name"]: p["state"] for p in doc["processes"]}


def cat(cli: CliRunner, task_id: str, path: str) -> str:
    return ok(cli, f"cat /local/tasks/{task_id}/{path}")


@pytest.mark.engine
def test_aurora_processes_on_the_engine(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "x.aurora"
    path.write_text(AURORA)
    ok(cli, f"svc deploy -f {path} --timeout 60")
    multi = instance(cli, "multi")
    tid = multi["task_id"]
    wait_until(lambda: shown(cli, tid).get("web") == "RUNNING", 30, "web to run")
    assert shown(cli, tid) == {"setup": "SUCCESS", "web": "RUNNING", "save": "WAITING"}
    both = ["setup-start", "web-start"]  # one sandbox for all processes
    wait_until(lambda: cat(cli, tid, "events").split() == both, 30, "web's event")
    assert cat(cli, tid, "setup/stdout") == "prepared\n"
    assert cat(cli, tid, "setup/stderr") == "warn\n"
    port = multi["ports"][0]["port"]
    wait_until(lambda: cat(cli, tid, "web/stdout") == f"port {port}\n", 30, "web's output")

    chain = instance(cli, "chain")["task_id"]
    wait_until(lambda: shown(cli, chain).get("rest") == "RUNNING", 30, "the chain to run")
    wait_until(lambda: cat(cli, chain, "events").split() == ["one", "two", "rest"], 30)

    # Stopping the service kills the instance: the runner stops 'web', then runs 'save'.
    ok(cli, "svc stop multi --timeout 60")
    engine.wait(tid, 60)
    states = shown(cli, tid)
    assert states == {"setup": "SUCCESS", "web": "KILLED", "save": "SUCCESS"}
    assert cat(cli, tid, "save/stdout") == "saved\n"
    doc = json.loads(ok(cli, f"inspect {tid} -o json"))
    assert doc["state"] == "KILLED" and doc["kind"] == "Task"


@pytest.mark.engine
def test_bad_process_order_is_refused_at_deploy(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "bad.aurora"
    path.write_text(
        "a = Process(name = 'a', cmdline = 'true', daemon = True)\n"
        "b = Process(name = 'b', cmdline = 'true')\n"
        "jobs = [Service(cluster = 'local', role = 'me', environment = 'devel', name = 'bad',\n"
        "  task = Task(processes = [a, b], constraints = order(a, b),\n"
        "              resources = Resources(cpu = 0.05, ram = 32*MB, disk = 16*MB)))]\n"
    )
    res = cli(f"svc deploy -f {path}")
    assert res.status != 0 and "daemon" in res.stderr
    assert json.loads(ok(cli, "svc ls -o json")) == []


def test_inspect_of_a_task_without_processes(fake_mount: Any, cli: CliRunner) -> None:
    cli("run --on /f -- echo hi")
    doc = json.loads(cli("inspect /f/tasks/echo.000001").stdout)
    assert doc["processes"] == []


def test_a_process_still_running_when_its_task_ended_is_lost() -> None:
    from dshell.backend import Capability
    from dshell.core.processes import PROCESSES_FILE, task_processes
    from dshell.model import Task, TaskState

    doc = {
        "state": "CLEANING",  # the runner was SIGKILLed before it could write its end
        "processes": [
            {"name": "web", "state": "RUNNING", "pid": 42},
            {"name": "save", "state": "WAITING"},
        ],
    }

    class Files:
        capabilities = frozenset({Capability.FILES})

        def read_file(self, task_id: str, path: str) -> Any:
            assert path == PROCESSES_FILE
            yield json.dumps(doc).encode()

    ended = task_processes(Files(), Task(id="t", name="t", state=TaskState.KILLED))  # type: ignore[arg-type]
    assert [(p.name, p.state, p.pid) for p in ended] == [
        ("web", "LOST", None),
        ("save", "WAITING", None),
    ]
    live = task_processes(Files(), Task(id="t", name="t", state=TaskState.RUNNING))  # type: ignore[arg-type]
    assert [(p.name, p.state, p.pid) for p in live] == [
        ("web", "RUNNING", 42),
        ("save", "WAITING", None),
    ]
