"""Unit tests without services: sbatch argv, event diffs, the task cache, SSH helpers."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from dshell.backend import Mount
from dshell.errors import NotFoundError, UnsupportedError, UsageError
from dshell.model import Constraint, Resources, RunSpec, Task, TaskState
from dshell.net.ssh import SshTarget, quote_argv

from dshell_slurm.backend import SlurmBackend
from dshell_slurm.parse import labels_from_comment
from dshell_slurm.runner import check_source
from dshell_slurm.state import EventLog, TaskCache, diff
from dshell_slurm.submit import Defaults, constraint_args, parse_sbatch, sbatch_args

# ---- sbatch ------------------------------------------------------------------------------------


def test_argv_command_is_wrapped_with_quoting() -> None:
    spec = RunSpec(command=["echo", "a b", "$(x)"], name="n", resources=Resources(cpus=0.1, mem=64))
    argv, stdin = sbatch_args(spec, Defaults())
    assert stdin is None
    assert argv[:3] == ["sbatch", "--parsable", "--job-name=n"]
    assert "--cpus-per-task=1" in argv and "--mem=64M" in argv
    assert "--output=dshell-%j.out" in argv and "--error=dshell-%j.err" in argv
    wrap = argv[-1].removeprefix("--wrap=")
    assert shlex.split(wrap) == ["echo", "a b", "$(x)"]


def test_shell_string_is_the_script_with_env_exported() -> None:
    spec = RunSpec(command=["echo $HOME | wc -c"], shell=True, env={"A": "x y'z"})
    argv, stdin = sbatch_args(spec, Defaults(partition="p", account="acct", workdir="/w d"))
    assert not any(a.startswith("--wrap") for a in argv)
    assert stdin is not None
    script = stdin.decode()
    assert script.startswith("#!/bin/sh\n") and script.endswith("echo $HOME | wc -c\n")
    assert "export A='x y'\"'\"'z'" in script
    assert {"--partition=p", "--account=acct", "--chdir=/w d"} <= set(argv)
    assert argv[2] == "--job-name=echo"


def test_instances_constraints_dependencies_labels() -> None:
    spec = RunSpec(
        command=["true"],
        instances=4,
        constraints=[Constraint("features", "IS", "rack1"), Constraint("hostname", "UNLIKE", "n3")],
        after=["12", "13_1"],
        labels={"app": "web"},
        partition="gpu",
        resources=Resources(cpus=2.5, mem=100.2, disk=10, gpus=1),
    )
    argv, _ = sbatch_args(spec, Defaults(partition="debug"))
    assert "--array=0-3" in argv and "--output=dshell-%A_%a.out" in argv
    assert "--constraint=rack1" in argv and "--exclude=n3" in argv
    assert "--dependency=afterok:12:13_1" in argv
    assert "--partition=gpu" in argv and "--partition=debug" not in argv
    assert {"--cpus-per-task=3", "--mem=101M", "--tmp=10M", "--gpus=1"} <= set(argv)
    comment = next(a for a in argv if a.startswith("--comment="))
    assert labels_from_comment(comment.removeprefix("--comment=")) == {"app": "web"}


def test_constraint_forms() -> None:
    assert constraint_args([Constraint("rack", "LIKE", "ssd|nvme")]) == ["--constraint=[ssd|nvme]"]
    assert constraint_args([Constraint("hostname", "IS", "n[1-2]")]) == ["--nodelist=n[1-2]"]
    with pytest.raises(UsageError, match="cannot be expressed"):
        constraint_args([Constraint("hostname", "UNIQUE")])
    with pytest.raises(UsageError):
        constraint_args([Constraint("rack", "IS", "a;b")])


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (RunSpec(command=[]), UsageError),
        (RunSpec(command=["x"], ports=["http"]), UsageError),
        (RunSpec(command=["x"], volumes=["v"]), UnsupportedError),
        (RunSpec(command=["x"], after=["12; rm -rf /"]), UsageError),
        (RunSpec(command=["x"], env={"BAD NAME": "1"}), UsageError),
    ],
)
def test_bad_specs_launch_nothing(spec: RunSpec, error: type[Exception]) -> None:
    with pytest.raises(error):
        sbatch_args(spec, Defaults())


def test_parse_sbatch() -> None:
    assert parse_sbatch("1234\n") == "1234"
    assert parse_sbatch("1234;cluster\n") == "1234"
    with pytest.raises(Exception, match="no job id"):
        parse_sbatch("Submitted batch job 5")


# ---- events and the cache -------------------------------------------------------------------


def _task(tid: str, state: TaskState, message: str | None = None) -> Task:
    return Task(id=tid, name="t", state=state, message=message)


def test_diff_adds_updates_and_removes() -> None:
    log = EventLog(Path("/nonexistent"))
    assert [k for k, _ in diff({}, [_task("1", TaskState.STAGING)])] == ["TASK_ADDED"]
    old = {"1": ["STAGING", "", "", "t"], "2": ["RUNNING", "", "n1", "u"]}
    changes = diff(old, [_task("1", TaskState.RUNNING), _task("3", TaskState.STAGING)])
    assert [(k, t.id, t.state) for k, t in changes] == [
        ("TASK_UPDATED", "1", "RUNNING"),
        ("TASK_ADDED", "3", "STAGING"),
        ("TASK_REMOVED", "2", "RUNNING"),
    ]
    assert log.last_seq() == 0


def test_event_log_sequence_survives_processes(tmp_path: Path) -> None:
    first = EventLog(tmp_path)
    assert first.record([_task("1", TaskState.STAGING)]) == 1
    assert first.record([_task("1", TaskState.STAGING)]) == 1  # no change, no event
    again = EventLog(tmp_path)  # another process
    assert again.record([_task("1", TaskState.FINISHED)]) == 2
    events = again.after(0)
    assert [(e.seq, e.type, e.task.state if e.task else None) for e in events] == [
        (1, "TASK_ADDED", "STAGING"),
        (2, "TASK_UPDATED", "FINISHED"),
    ]
    assert again.after(1)[0].seq == 2


def test_task_cache_keeps_terminal_tasks_only(tmp_path: Path) -> None:
    cache = TaskCache(tmp_path)
    cache.remember(_task("1", TaskState.RUNNING))
    assert cache.get("1") is None
    done = _task("2", TaskState.FAILED)
    done.raw = {"job_id": 2, "standard_output": "/o", "secret_field": "x"}
    cache.remember(done)
    got = TaskCache(tmp_path).get("2")
    assert got is not None and got.state == "FAILED"
    assert got.raw == {"job_id": 2, "standard_output": "/o"}


def test_cached_task_outlives_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job Slurm purged (MinJobAge) is still known when dshell waited for it."""
    monkeypatch.setenv("DSHELL_STATE_DIR", str(tmp_path))
    backend = SlurmBackend(Mount(target="/hpc", type="slurm", source="localhost"))
    monkeypatch.setattr(backend.slurm, "jobs", lambda job_ids=None, raw=False: [])
    TaskCache(backend._dir()).remember(Task(id="77", name="gone", state=TaskState.FINISHED))
    assert backend.get_task("77").state == TaskState.FINISHED
    with pytest.raises(NotFoundError):
        backend.get_task("78")
    with pytest.raises(NotFoundError, match="not a Slurm job id"):
        backend.get_task("web.1; rm -rf /")


# ---- mount validation and ssh helpers -------------------------------------------------------


def test_bad_sources_and_options() -> None:
    with pytest.raises(UsageError, match="bad source 'http://x'"):
        check_source("http://x", {})
    with pytest.raises(UsageError, match="identity=/no/such/key"):
        check_source("ssh://u@h", {"identity": "/no/such/key"})
    with pytest.raises(UsageError, match="poll"):
        SlurmBackend(Mount(target="/h", type="slurm", options={"poll": "-1"}))


def test_missing_squeue_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    from dshell.errors import UnreachableError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UnreachableError, match="squeue is not on PATH"):
        check_source("localhost", {})
    assert SlurmBackend.availability().available in (True, False)


def test_ssh_target_parsing() -> None:
    t = SshTarget.parse("ssh://alice@login.example:2200")
    assert (t.user, t.host, t.port, t.known_hosts_name) == (
        "alice",
        "login.example",
        2200,
        "[login.example]:2200",
    )
    assert SshTarget.parse("ssh://h").known_hosts_name == "h"
    for bad in ("ssh://", "ssh://h/path", "ssh://h:notaport", "sftp://h"):
        with pytest.raises(UsageError):
            SshTarget.parse(bad)


def test_remote_argv_is_quoted() -> None:
    hostile = "x'; touch /tmp/PWNED; echo '"
    line = quote_argv(["squeue", "--name", hostile, "$(id)"])
    assert shlex.split(line) == ["squeue", "--name", hostile, "$(id)"]
    with pytest.raises(UsageError):
        quote_argv([])


def test_ssh_pool_reuses_one_connection_per_user_host_port() -> None:
    from dshell.net.ssh import SshPool

    pool = SshPool()
    a = pool.get(SshTarget.parse("ssh://u@h:22"))
    assert pool.get(SshTarget.parse("ssh://u@h")) is a  # same (user, host, port)
    assert pool.get(SshTarget.parse("ssh://v@h")) is not a
    pool.close()  # never connected: nothing to do, and no error


def test_imports_stay_light() -> None:
    """The backend imports no paramiko until an ssh:// mount is used (nor the sacct parser
    until accounting is asked for); paramiko comes without its optional ``invoke`` (~100 ms of
    import time measured here)."""
    import subprocess
    import sys

    code = (
        "import sys, dshell_slurm.backend\n"
        "assert 'paramiko' not in sys.modules and 'dshell.net.ssh' not in sys.modules\n"
        "assert 'dshell_slurm.parse_acct' not in sys.modules  # only with accounting\n"
        "from dshell.net.ssh import _paramiko\n"
        "pk = _paramiko()\n"
        "assert 'invoke' not in sys.modules and pk.config.invoke is None\n"
        "assert pk.SSHClient is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
