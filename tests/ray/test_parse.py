"""The Ray parsers on JSON captured from a real Ray 2.60 (``golden/capture.py``), and on
hand-made variants with fields missing or added. No Ray needed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from dshell.model import Resources, RunSpec, TaskState

from dshell_ray.parse import (
    MIB,
    NAME_KEY,
    actor_to_task,
    job_output,
    job_parents,
    job_stats,
    job_to_task,
    jobs_to_tasks,
    nodes_to_agents,
    parse_logical,
    ray_task_to_task,
    rfc3339_ms,
    state_rows,
    submit_body,
)

GOLDEN = Path(__file__).parent / "golden"


def load(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


# ---- jobs -----------------------------------------------------------------------------------


def test_succeeded_job() -> None:
    task = job_to_task(load("job_succeeded.json"))
    assert (task.id, task.name, task.state) == ("cap-ok", "cap-ok", TaskState.FINISHED)
    assert task.exit_code == 0 and task.status == 0
    assert task.command == ["echo hello"] and task.shell
    assert task.started_at and task.finished_at and task.created_at == task.started_at
    assert [h.state for h in task.history] == ["STAGING", "RUNNING", "FINISHED"]
    assert task.raw is None and job_to_task(load("job_succeeded.json"), raw=True).raw


def test_failed_job_keeps_driver_exit_code_and_drops_the_log_tail() -> None:
    task = job_to_task(load("job_failed.json"))
    assert task.state == TaskState.FAILED and task.exit_code == 3 and task.status == 3
    assert task.reason == "REASON_FAILED"
    assert task.message == (
        "Job entrypoint command failed with exit code 3 (JOB_ENTRYPOINT_COMMAND_ERROR)"
    )


def test_running_job_named_by_metadata() -> None:
    task = job_to_task(load("job_running.json"))
    assert (task.state, task.name, task.labels) == (TaskState.RUNNING, "sleeper", {})
    assert task.exit_code is None and task.finished_at is None and task.message is None
    assert task.agent_id == load("job_running.json")["driver_node_id"]


def test_stopped_job_is_killed_by_sigterm() -> None:
    task = job_to_task(load("job_stopped.json"))
    assert task.state == TaskState.KILLED and task.reason == "REASON_KILLED_BY_USER"
    assert task.signal == 15 and task.status == 143  # as a killed task of the engine


def test_job_listing_active_only_unless_all() -> None:
    jobs = load("jobs.json")
    assert {t.id for t in jobs_to_tasks(jobs, all_=True)} == {
        "cap-actors",
        "cap-fail",
        "cap-ok",
        "cap-stop",
    }
    assert [t.id for t in jobs_to_tasks(jobs, all_=False)] == ["cap-actors"]
    assert job_parents(jobs) == {"02000000": "cap-actors"}


@pytest.mark.parametrize("status", ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"])
def test_job_states(status: str) -> None:
    job = {**load("job_running.json"), "status": status}
    want = {
        "PENDING": TaskState.STAGING,
        "RUNNING": TaskState.RUNNING,
        "SUCCEEDED": TaskState.FINISHED,
        "FAILED": TaskState.FAILED,
        "STOPPED": TaskState.KILLED,
    }[status]
    assert job_to_task(job).state == want


def test_job_tolerates_missing_and_added_fields() -> None:
    minimal = job_to_task({"submission_id": "j1", "status": "FAILED", "future_field": [1]})
    assert (minimal.id, minimal.name, minimal.state) == ("j1", "j1", TaskState.FAILED)
    assert minimal.exit_code is None and minimal.history == []
    odd = job_to_task({"job_id": "03000000", "status": "SOMETHING_NEW", "start_time": None})
    assert odd.id == "03000000" and odd.state == TaskState.STAGING  # a driver-only job
    # older Ray: no driver_exit_code; a success still means 0
    old = copy.deepcopy(load("job_succeeded.json"))
    del old["driver_exit_code"]
    assert job_to_task(old).exit_code == 0
    assert jobs_to_tasks([{"status": "RUNNING"}, "junk"], all_=True) == []  # type: ignore[list-item]


# ---- Ray tasks and actors -----------------------------------------------------------------


def test_ray_tasks_hang_under_their_job() -> None:
    parents = job_parents(load("jobs.json"))
    rows = state_rows(load("tasks.json"))
    assert len(rows) == 5
    tasks = [ray_task_to_task(r, parents) for r in rows]
    squares = [t for t in tasks if t.name == "square"]
    assert len(squares) == 3
    sq = squares[0]
    assert sq.state == TaskState.FINISHED and sq.parent_task == "cap-actors"
    assert sq.labels == {"ray.kind": "normal_task"} and sq.resources.cpus == 1.0
    assert [h.state for h in sq.history][-2:] == ["RUNNING", "FINISHED"]
    assert sq.pid and sq.started_at and sq.finished_at


def test_ray_task_states_and_missing_fields() -> None:
    row = {"task_id": "t" * 48, "state": "PENDING_NODE_ASSIGNMENT"}
    assert ray_task_to_task(row, {}).state == TaskState.STAGING
    row = {"task_id": "t", "state": "RUNNING_IN_RAY_GET", "job_id": "05000000"}
    task = ray_task_to_task(row, {})
    assert task.state == TaskState.RUNNING and task.parent_task == "05000000"
    assert ray_task_to_task({"state": "SUBMITTED_TO_WORKER"}, {}).state == TaskState.STARTING
    failed = ray_task_to_task({"state": "FAILED", "error_type": "WORKER_DIED"}, {})
    assert failed.state == TaskState.FAILED and failed.message == "WORKER_DIED"


def test_actors() -> None:
    parents = job_parents(load("jobs.json"))
    actors = {
        a.name: a for a in (actor_to_task(r, parents) for r in state_rows(load("actors.json")))
    }
    counter = actors["counter"]
    assert counter.state == TaskState.RUNNING and counter.parent_task == "cap-actors"
    assert counter.labels == {"ray.kind": "actor", "ray.class": "Counter"} and counter.pid
    supervisor = actors["_ray_internal_job_actor_cap-ok"]
    assert supervisor.state == TaskState.FINISHED and supervisor.parent_task == "cap-ok"
    dead = actor_to_task(
        {
            "actor_id": "a" * 32,
            "state": "DEAD",
            "death_cause": {"creation_task_failure_context": {"error_message": "boom\nmore"}},
        },
        {},
    )
    assert dead.state == TaskState.FAILED and dead.message == "boom"
    assert actor_to_task({"state": "PENDING_CREATION"}, {}).state == TaskState.STAGING


def test_state_rows_tolerates_other_shapes() -> None:
    assert state_rows({"data": {"result": {"result": [{"a": 1}, 2]}}}) == [{"a": 1}]
    assert state_rows({"data": {"result": [{"a": 1}]}}) == [{"a": 1}]
    assert state_rows({"result": False, "msg": "boom"}) == []
    assert state_rows(None) == []


# ---- nodes and usage ------------------------------------------------------------------------


def test_nodes_with_summary() -> None:
    (agent,) = nodes_to_agents(load("nodes.json"), load("nodes_summary.json"))
    assert agent.id.startswith("62cb349a") and agent.hostname == "127.0.0.1"
    assert agent.state == "UP" and agent.backend == "ray"
    assert agent.total == Resources(cpus=2.0, mem=pytest.approx(1e9 / MIB))
    assert agent.attributes == {"ip": "127.0.0.1", "head": "true", "object_store_mib": "286"}
    assert agent.allocated.cpus == 0.0 and agent.used.mem > 0 and agent.used.cpus > 0
    assert agent.tasks == 2  # drivers on the node


def test_nodes_without_summary_and_dead_nodes() -> None:
    nodes = copy.deepcopy(load("nodes.json"))
    nodes["data"]["result"]["result"][0]["state"] = "DEAD"
    (agent,) = nodes_to_agents(nodes)
    assert agent.state == "DOWN" and agent.used == Resources() and agent.total.cpus == 2.0


def test_parse_logical() -> None:
    text = "1.5/2.0 CPU\n512.00MiB/1.00GiB memory\n0B/286.10MiB object_store_memory\nbad line"
    got = parse_logical(text)
    assert got["CPU"] == (1.5, 2.0)
    assert got["memory"] == (512 * MIB, 1024 * MIB)
    assert got["object_store_memory"][0] == 0.0 and set(got) == {
        "CPU",
        "memory",
        "object_store_memory",
    }


def test_job_stats() -> None:
    stats = job_stats(load("jobs.json"), load("nodes_summary.json"))
    assert [s.task_id for s in stats] == ["cap-actors"]
    assert stats[0].processes == 1  # its driver, in the summary's worker list
    assert job_stats([], None) == []


def test_rfc3339_ms() -> None:
    assert rfc3339_ms(1795646473723) == "2026-11-25T22:41:13.723Z"
    assert rfc3339_ms("1795646473723") == "2026-11-25T22:41:13.723Z"
    assert rfc3339_ms(0) is None and rfc3339_ms(None) is None and rfc3339_ms("x") is None


# ---- submission ------------------------------------------------------------------------------


def test_submit_body_argv_is_shell_quoted() -> None:
    spec = RunSpec(
        command=["python", "-c", "print('a b')"],
        name="calc",
        env={"A": "1"},
        labels={"team": "x"},
        resources=Resources(cpus=0.5, mem=256, gpus=1),
    )
    assert submit_body(spec) == {
        "entrypoint": "python -c 'print('\"'\"'a b'\"'\"')'",
        "metadata": {"team": "x", NAME_KEY: "calc"},
        "runtime_env": {"env_vars": {"A": "1"}},
        "entrypoint_num_cpus": 0.5,
        "entrypoint_num_gpus": 1,
        "entrypoint_memory": 256 * MIB,
    }


def test_submit_body_shell_string_as_is() -> None:
    spec = RunSpec(command=["echo $HOME | wc -c"], shell=True, resources=Resources())
    assert submit_body(spec, "sid-1") == {
        "entrypoint": "echo $HOME | wc -c",
        "submission_id": "sid-1",
    }


# ---- logs -------------------------------------------------------------------------------------


def test_job_output_drops_the_supervisor_lines() -> None:
    log = load("job_logs.json")["logs"]
    job = load("job_succeeded.json")
    assert "Running entrypoint" in log and "Runtime env is setting up" in log
    assert job_output(log, job, complete=True) == "hello\n"


def test_job_output_holds_back_a_partial_line_until_complete() -> None:
    job = {"submission_id": "j", "entrypoint": "echo a"}
    log = "a\nRunning entrypoint for j"
    assert job_output(log, job, complete=False) == "a\n"
    assert job_output(log + "ob j: echo a\nb\n", job, complete=False) == "a\nb\n"
    assert job_output("no newline", job, complete=True) == "no newline"
    # the user's own lines that look alike are kept: only the exact banner, once, is dropped
    user = "Running entrypoint for job j: echo a\nRunning entrypoint for job j: echo a\n"
    assert job_output(user, job, complete=True) == "Running entrypoint for job j: echo a\n"
