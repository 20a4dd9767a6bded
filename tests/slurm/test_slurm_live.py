"""The Slurm backend against a real Slurm (local client commands): beyond the contract."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from dshell.backend import TaskQuery
from dshell.errors import BackendError, ConflictError, NotFoundError, TimeoutExpired
from dshell.model import Constraint, RunSpec, TaskState

from dshell_slurm.backend import SlurmBackend

from .conftest import local_mount

LONG = ["sleep", "300"]


@pytest.fixture
def backend(slurm_conf: str, slurm_workdir: str, slurm_state: object) -> Iterator[SlurmBackend]:
    b = SlurmBackend(local_mount(slurm_conf, slurm_workdir))
    yield b
    for task in b.list_tasks(TaskQuery()):  # leave the shared cluster idle
        if task.name.startswith("live-"):
            b.kill(task.id)
    b.close()


def until(backend: SlurmBackend, task_id: str, pred: object, timeout: float = 30) -> object:
    """Poll get_task until ``pred(task)``; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        task = backend.get_task(task_id)
        if pred(task):  # type: ignore[operator]
            return task
        assert time.monotonic() < deadline, f"{task_id}: still {task.state} ({task.message})"
        time.sleep(0.2)


def run(backend: SlurmBackend, **kw: object) -> str:
    (task,) = backend.submit(RunSpec(**kw))  # type: ignore[arg-type]
    return task.id


def test_validate_and_nodes(backend: SlurmBackend) -> None:
    backend.validate_mount()
    agents = backend.list_agents()
    assert len(agents) >= 2
    assert {a.id for a in agents} >= {"n1", "n2"}
    n1 = next(a for a in agents if a.id == "n1")
    assert (n1.total.cpus, n1.total.mem) == (2.0, 2000.0)
    assert n1.attributes["features"] == "rack1"


def test_pending_reason_then_dependency_runs(backend: SlurmBackend) -> None:
    first = run(backend, command=["sleep", "1"], name="live-first")
    second = run(backend, command=["echo", "after"], name="live-second", after=[first])
    pending = backend.get_task(second)
    assert pending.state == TaskState.STAGING and pending.message == "Dependency"
    done = backend.wait_task(second, timeout=60)
    assert done.state == TaskState.FINISHED
    assert b"".join(c.data for c in backend.read_output(second)) == b"after\n"


def test_array_instances_see_their_index(backend: SlurmBackend) -> None:
    tasks = backend.submit(
        RunSpec(command=["sh", "-c", "echo $SLURM_ARRAY_TASK_ID"], instances=3, name="live-arr")
    )
    assert [(t.instance, t.id.split("_")[1]) for t in tasks] == [(0, "0"), (1, "1"), (2, "2")]
    for task in tasks:
        done = backend.wait_task(task.id, timeout=60)
        assert done.state == TaskState.FINISHED and done.instance == task.instance
        out = b"".join(c.data for c in backend.read_output(task.id))
        assert out == f"{task.instance}\n".encode()


def test_constraints_place_jobs(backend: SlurmBackend) -> None:
    on_n2 = run(
        backend,
        command=["sh", "-c", "echo $SLURMD_NODENAME"],
        constraints=[Constraint("hostname", "IS", "n2"), Constraint("features", "IS", "rack1")],
    )
    assert backend.wait_task(on_n2, timeout=60).agent_id == "n2"
    assert b"".join(c.data for c in backend.read_output(on_n2)) == b"n2\n"
    with pytest.raises(BackendError, match=r"(?i)invalid feature"):
        backend.submit(RunSpec(command=["true"], constraints=[Constraint("f", "IS", "nosuch")]))


def test_signal_reaches_the_job_and_kill_ends_it(backend: SlurmBackend) -> None:
    script = "trap 'echo got USR1; exit 7' USR1\necho ready\nwhile :; do sleep 0.1; done"
    job = run(backend, command=[script], shell=True, name="live-trap")
    until(backend, job, lambda t: t.state == TaskState.RUNNING)
    stream = backend.read_output(job, follow=True)
    assert next(stream).data == b"ready\n"  # the trap is installed
    backend.kill(job, signal=signal.SIGUSR1)
    done = backend.wait_task(job, timeout=60)
    assert (done.state, done.exit_code) == (TaskState.FAILED, 7)
    assert b"got USR1\n" in b"".join(c.data for c in stream)
    assert backend.kill(job).state == TaskState.FAILED  # killing a finished job changes nothing
    with pytest.raises(NotFoundError):
        backend.kill("999999")


def test_exec_into_running_job(backend: SlurmBackend) -> None:
    job = run(backend, command=LONG, name="live-exec")
    until(backend, job, lambda t: t.state == TaskState.RUNNING)
    handle = backend.exec(
        job, ["sh", "-c", "echo $SLURM_JOB_ID $X; echo oops >&2; exit 4"], env={"X": "y"}
    )
    chunks = list(handle.chunks())
    assert handle.status() == 4
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == f"{job} y\n".encode()
    assert b"oops" in b"".join(c.data for c in chunks if c.stream == "stderr")
    handle.close()
    backend.kill(job)
    backend.wait_task(job, timeout=60)
    with pytest.raises(ConflictError, match="exec needs a running job"):
        backend.exec(job, ["true"])


def test_follow_output_and_files(backend: SlurmBackend) -> None:
    job = run(
        backend,
        command=["for i in 1 2 3; do echo $i; sleep 0.3; done; echo bad >&2"],
        shell=True,
        name="live-follow",
    )
    followed = b"".join(backend.read_file(job, "stdout", follow=True))
    assert followed == b"1\n2\n3\n"
    assert backend.get_task(job).state == TaskState.FINISHED
    assert b"".join(backend.read_file(job, "stdout", offset=2)) == b"2\n3\n"
    assert b"".join(backend.read_file(job, "/stderr")) == b"bad\n"
    entries = {e.name: e for e in backend.list_files(job, "")}
    assert set(entries) == {"stdout", "stderr"} and entries["stdout"].size == 6
    with pytest.raises(NotFoundError):
        list(backend.read_file(job, "../../etc/passwd"))
    attached = [(c.stream, c.data) for c in backend.attach(job)]
    assert ("stderr", b"bad\n") in attached


def test_events_follow_a_job_to_its_end(backend: SlurmBackend) -> None:
    stream = backend.events(follow=True)  # from now on
    job = run(backend, command=["sleep", "0.5"], name="live-events")
    seen = []
    for event in stream:
        seen.append(event)
        if event.task and event.task.id == job and event.task.state.terminal:
            break
    stream.close()  # type: ignore[attr-defined]
    mine = [e for e in seen if e.task and e.task.id == job]
    assert mine[0].type == "TASK_ADDED" and mine[-1].task.state == TaskState.FINISHED  # type: ignore[union-attr]
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    replay = list(backend.events(since=mine[0].seq - 1, follow=False))
    assert replay[0].seq == mine[0].seq


def test_stats_allocation_and_usage(backend: SlurmBackend) -> None:
    job = run(
        backend,
        command=["python3", "-c", "x=bytearray(40<<20); import time; time.sleep(60)"],
        name="live-top",
    )
    until(backend, job, lambda t: t.state == TaskState.RUNNING)
    deadline = time.monotonic() + 20
    while True:
        stats = {s.task_id: s for s in backend.stats()}
        assert job in stats and stats[job].allocated.cpus >= 1
        if stats[job].rss > 30 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stats[job].rss > 30 and stats[job].processes >= 1  # from sstat (jobacct_gather/linux)


def test_drain_and_resume(backend: SlurmBackend) -> None:
    try:
        drained = backend.admin_call("drain", node="n2", reason="dshell test maint")
        assert drained.state in ("DRAINING", "DRAINED") and drained.reason == "dshell test maint"
    finally:
        resumed = backend.admin_call("undrain", node="n2")
    assert resumed.state == "UP"
    with pytest.raises(NotFoundError):
        backend.admin_call("drain", node="nosuchnode", reason="x")


def test_wait_timeout_and_errors(
    backend: SlurmBackend, slurm_conf: str, slurm_workdir: str
) -> None:
    job = run(backend, command=LONG, name="live-wait")
    with pytest.raises(TimeoutExpired):
        backend.wait_task(job, timeout=0.5)
    other = SlurmBackend(local_mount(slurm_conf, slurm_workdir, partition="nosuch"))
    assert other.list_agents() == [] and other.list_tasks(TaskQuery(all=True)) == []
    with pytest.raises(BackendError, match=r"(?i)invalid partition"):
        other.submit(RunSpec(command=["true"]))


def test_without_accounting_dshell_remembers_what_it_waited_for(
    backend: SlurmBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test cluster has no slurmdbd: the fallback path (no sacct), live."""
    assert backend.slurm.accounting() is False  # from the real `scontrol show config`
    job = run(backend, command=["sh", "-c", "echo bye; exit 3"], name="live-noacct")
    done = backend.wait_task(job, timeout=60)  # what an attached run does: remembered
    assert (done.state, done.exit_code) == (TaskState.FAILED, 3)
    calls: list[list[str]] = []
    real_run, real_jobs = backend.runner.run, backend.slurm.jobs
    monkeypatch.setattr(
        backend.runner, "run", lambda argv, **kw: calls.append(argv) or real_run(argv, **kw)
    )
    monkeypatch.setattr(  # Slurm forgets the job (MinJobAge is 300 s here: too long to wait)
        backend.slurm,
        "jobs",
        lambda job_ids=None, raw=False: [
            j for j in real_jobs(None, raw=raw) if str(j.get("job_id")) != job
        ],
    )
    shown = backend.get_task(job)
    assert (shown.state, shown.exit_code, shown.name) == (TaskState.FAILED, 3, "live-noacct")
    assert b"".join(backend.read_file(job, "stdout")) == b"bye\n"  # its files are still known
    assert job in {t.id for t in backend.list_tasks(TaskQuery(all=True))}
    assert not [c for c in calls if c[0] == "sacct"]
    with pytest.raises(NotFoundError) as info:
        backend.get_task("99999999")
    assert info.value.hint and "MinJobAge" in info.value.hint
