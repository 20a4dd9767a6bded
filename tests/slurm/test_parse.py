"""Golden tests of the pure parsers on output captured from the real Slurm 22.05 tools.

Inputs: ``golden/*-22.05*`` (captured by ``golden/capture.py``) and ``golden/*-24.05-variant``
(the newer JSON shapes, derived by ``golden/make_variants.py``). Expectations:
``golden/*.expected.json``; regenerate with ``DSHELL_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dshell.model import TaskState, to_builtins

from dshell_slurm import decode, parse
from dshell_slurm.parse import (
    JOB_STATES,
    exit_status,
    expand_array,
    expand_output,
    job_state,
    jobs_to_tasks,
    num,
    output_paths,
)
from dshell_slurm.parse_nodes import (
    cpu_seconds,
    job_stats,
    node_state,
    nodes_to_agents,
    parse_sstat,
)

GOLDEN = Path(__file__).parent / "golden"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / name).read_text())
    return doc


def check_golden(name: str, data: Any) -> None:
    path = GOLDEN / name
    if os.environ.get("DSHELL_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    assert path.exists(), f"{path} missing: run with DSHELL_UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == data


@pytest.fixture(scope="module")
def tasks() -> dict[str, Any]:
    return {t.id: t for t in jobs_to_tasks(load("squeue-22.05.json"))}


def named(tasks: dict[str, Any], name: str) -> Any:
    (task,) = [t for t in tasks.values() if t.name == name]
    return task


# ---- squeue --json (22.05) -----------------------------------------------------------------------


def test_squeue_golden() -> None:
    check_golden(
        "squeue-22.05.expected.json", to_builtins(jobs_to_tasks(load("squeue-22.05.json")))
    )


def test_finished_and_failed_jobs(tasks: dict[str, Any]) -> None:
    done = named(tasks, "completed")
    assert (done.state, done.exit_code, done.signal, done.message) == ("FINISHED", 0, None, None)
    assert [h.state for h in done.history] == ["STAGING", "RUNNING", "FINISHED"]
    failed = named(tasks, "failed")
    assert (failed.state, failed.exit_code, failed.message) == ("FAILED", 3, "NonZeroExitCode")
    killed = named(tasks, "signalled")
    assert (killed.state, killed.signal, killed.status) == ("FAILED", 9, 137)
    timeout = named(tasks, "timeout")
    assert timeout.state == "FAILED" and timeout.reason == "REASON_MAX_COMPLETION_TIME_REACHED"
    assert timeout.message == "TimeLimit"


def test_pending_reasons_are_messages(tasks: dict[str, Any]) -> None:
    assert named(tasks, "held").message == "JobHeldUser"
    assert named(tasks, "dependent").message == "Dependency"
    assert named(tasks, "big").message == "Priority"
    assert named(tasks, "labelled").message == "Resources"
    for name in ("held", "dependent", "big", "labelled"):
        task = named(tasks, name)
        assert task.state == TaskState.STAGING and task.started_at is None
        assert [h.state for h in task.history] == ["STAGING"]


def test_cancelled_jobs_are_killed(tasks: dict[str, Any]) -> None:
    cancelled = named(tasks, "cancelled")
    assert (cancelled.state, cancelled.signal, cancelled.reason) == (
        "KILLED",
        15,
        "REASON_KILLED_BY_USER",
    )
    never = named(tasks, "never")
    assert never.state == "KILLED" and never.reason == "REASON_DEPENDENCY_NEVER_SATISFIED"


def test_array_tasks_are_instances(tasks: dict[str, Any]) -> None:
    array = sorted((t for t in tasks.values() if t.name == "array"), key=lambda t: t.instance)
    assert [t.id for t in array] == [f"9_{i}" for i in range(6)]
    assert [t.instance for t in array] == list(range(6))
    assert [t.state for t in array[:2]] == ["RUNNING", "RUNNING"]
    assert all(t.state == "STAGING" and t.message == "JobArrayTaskLimit" for t in array[2:])


def test_labels_resources_and_placement(tasks: dict[str, Any]) -> None:
    labelled = named(tasks, "labelled")
    assert labelled.labels == {
        "app": "web",
        "tier": "1",
        "slurm/user": "root",
        "slurm/partition": "debug",
    }
    assert (labelled.resources.cpus, labelled.resources.mem) == (2.0, 128.0)
    running = named(tasks, "running")
    assert running.agent_id == "n2" and running.resources.mem == 64.0
    assert running.created_at and running.created_at.endswith("Z")


def test_output_paths_follow_sbatch_patterns() -> None:
    jobs = {j["name"] + str(j["array_task_id"]): j for j in load("squeue-22.05.json")["jobs"]}
    out, err = output_paths(jobs["labelledNone"])
    assert out.endswith("/dshell-10.out") and err.endswith("/dshell-10.err")
    out, err = output_paths(jobs["array1"])
    assert out.endswith("/arr-9_1.out") and err == out
    cwd = jobs["completedNone"]["current_working_directory"]
    assert output_paths(jobs["completedNone"]) == (f"{cwd}/slurm-1.out", f"{cwd}/slurm-1.out")
    job = {"job_id": 7, "name": "x y", "user_name": "ann", "batch_host": "n1"}
    assert expand_output("o-%5j-%x-%u-%N-%%.txt", job) == "o-00007-x y-ann-n1-%.txt"


# ---- newer formats ------------------------------------------------------------------------------

FIELDS = [
    *("id", "name", "state", "exit_code", "signal", "reason", "message", "instance"),
    *("created_at", "started_at", "finished_at", "agent_id", "labels", "resources"),
]


def test_newer_format_parses_like_22_05() -> None:
    old = {t.id: t for t in jobs_to_tasks(load("squeue-22.05.json"))}
    new = {t.id: t for t in jobs_to_tasks(load("squeue-24.05-variant.json"))}
    assert set(old) <= set(new)
    for tid, task in old.items():
        for field in FIELDS:
            assert getattr(new[tid], field) == getattr(task, field), (tid, field)


@pytest.mark.parametrize(
    ("name", "state", "reason"),
    [
        ("oom", "FAILED", "REASON_CONTAINER_LIMITATION_MEMORY"),
        ("preempted", "KILLED", "REASON_PREEMPTED"),
        ("suspended", "RUNNING", "REASON_SUSPENDED"),
        ("nodefail", "FAILED", "REASON_AGENT_FAILED"),
        ("completing", "RUNNING", None),
    ],
)
def test_states_only_newer_or_bigger_clusters_show(name: str, state: str, reason: str) -> None:
    tasks = {t.name: t for t in jobs_to_tasks(load("squeue-24.05-variant.json"))}
    assert (tasks[name].state, tasks[name].reason) == (state, reason)
    if name == "oom":
        assert tasks[name].signal == 9
    if name == "suspended":
        assert tasks[name].message == "suspended"


def test_missing_and_unknown_fields_degrade() -> None:
    (bare,) = jobs_to_tasks({"jobs": [{"job_id": 5, "job_state": "PENDING"}]})
    assert (bare.id, bare.state, bare.created_at, bare.resources.cpus) == ("5", "STAGING", None, 0)
    (odd,) = jobs_to_tasks({"jobs": [{"job_id": 6, "job_state": ["WEIRD_NEW"], "x": {}}]})
    assert odd.state == "RUNNING"  # unknown: active, never falsely terminal
    assert jobs_to_tasks({"jobs": [None, "junk"]}) == []
    assert jobs_to_tasks({}) == []


# ---- the state table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slurm", "dshell"),
    [
        ("PENDING", "STAGING"),
        ("CONFIGURING", "STARTING"),
        ("RUNNING", "RUNNING"),
        ("COMPLETING", "RUNNING"),
        ("COMPLETED", "FINISHED"),
        ("FAILED", "FAILED"),
        ("NODE_FAIL", "FAILED"),
        ("OUT_OF_MEMORY", "FAILED"),
        ("TIMEOUT", "FAILED"),
        ("BOOT_FAIL", "FAILED"),
        ("DEADLINE", "FAILED"),
        ("CANCELLED", "KILLED"),
        ("PREEMPTED", "KILLED"),
        ("SUSPENDED", "RUNNING"),
    ],
)
def test_state_table(slurm: str, dshell: str) -> None:
    assert job_state(slurm)[0] == dshell
    assert job_state([slurm])[0] == dshell
    assert JOB_STATES[slurm][0] == dshell


def test_exit_status_forms() -> None:
    assert exit_status(768) == (3, None)
    assert exit_status(9) == (None, 9)
    assert exit_status(0) == (0, None)
    assert exit_status(None) == (None, None)
    new = {"status": ["ERROR"], "return_code": {"set": True, "infinite": False, "number": 2}}
    assert exit_status(new) == (2, None)
    sig = {"status": ["SIGNALED"], "signal": {"id": {"set": True, "number": 15}, "name": "TERM"}}
    assert exit_status(sig) == (None, 15)
    assert exit_status({"return_code": 1, "signal": {"id": 0}}) == (1, None)


def test_numbers_and_arrays() -> None:
    assert num({"set": True, "infinite": False, "number": 4}) == 4
    assert num({"set": False, "infinite": False, "number": 0}) is None
    assert num({"set": True, "infinite": True, "number": 0}) is None
    assert num("12") == 12.0 and num(True) is None and num("x") is None
    assert expand_array("2-5%2") == [2, 3, 4, 5]
    assert expand_array("1,3,7-11:2") == [1, 3, 7, 9, 11]
    assert expand_array("bogus") == []
    assert len(expand_array("0-999999")) == parse.MAX_ARRAY_EXPANSION


# ---- sinfo --json --------------------------------------------------------------------------------


def test_sinfo_golden() -> None:
    agents = nodes_to_agents(load("sinfo-22.05.json")) + nodes_to_agents(
        load("sinfo-22.05-maint.json")
    )
    check_golden("sinfo-22.05.expected.json", to_builtins(agents))


def test_node_states_and_resources() -> None:
    up = {a.id: a for a in nodes_to_agents(load("sinfo-22.05.json"))}
    assert {a.state for a in up.values()} == {"UP"}
    assert (up["n2"].total.cpus, up["n2"].total.mem, up["n2"].allocated.cpus) == (2, 2000, 2)
    assert up["n3"].attributes == {"features": "rack2", "partitions": "debug", "arch": "x86_64"}
    maint = {a.id: a for a in nodes_to_agents(load("sinfo-22.05-maint.json"))}
    assert {k: a.state for k, a in maint.items()} == {
        "n1": "DRAINED",
        "n2": "DOWN",
        "n3": "DRAINING",
    }
    assert maint["n1"].reason == "disk replacement"


def test_sinfo_newer_format() -> None:
    old = {a.id: a for a in nodes_to_agents(load("sinfo-22.05-maint.json"))}
    new = {a.id: a for a in nodes_to_agents(load("sinfo-24.05-variant.json"))}
    for key, agent in old.items():
        for field in ("state", "total", "allocated", "used", "attributes", "reason", "hostname"):
            assert getattr(new[key], field) == getattr(agent, field), (key, field)


@pytest.mark.parametrize(
    ("state", "flags", "expected"),
    [
        ("idle", [], "UP"),
        ("mixed", [], "UP"),
        ("idle", ["DRAIN"], "DRAINED"),
        ("allocated", ["DRAIN"], "DRAINING"),
        ("down", [], "DOWN"),
        ("idle", ["NOT_RESPONDING"], "UP"),
        ("down", ["NOT_RESPONDING"], "DOWN"),
        (["IDLE", "DRAIN"], None, "DRAINED"),
        ("drained", None, "DRAINED"),
        ("draining", None, "DRAINING"),
        ("IDLE+POWERED_DOWN", None, "UP"),
    ],
)
def test_node_state_table(state: Any, flags: Any, expected: str) -> None:
    assert node_state(state, flags) == expected


# ---- sstat ---------------------------------------------------------------------------------------


def test_sstat_golden() -> None:
    usage = parse_sstat((GOLDEN / "sstat-22.05.txt").read_text())
    assert set(usage) == {4, 12, 14}
    assert all(procs == 1 and 2.5 < rss < 4 for _cpu, rss, procs in usage.values())


def test_sstat_times_and_stats() -> None:
    assert cpu_seconds("00:03") == 3 and cpu_seconds("01:02.500") == 62.5
    assert cpu_seconds("1-00:00:10") == 86410 and cpu_seconds("junk") == 0
    usage = parse_sstat("7.batch|00:00:30|100M|1\n7.0|00:00:30|28K|2\nbad line\n")
    assert usage[7][0] == 90 and usage[7][2] == 3
    job = {"job_id": 7, "job_state": "RUNNING", "start_time": 1000, "name": "w", "cpus": 1}
    (stat,) = job_stats([job], usage, now=1090.0)
    assert (stat.task_id, stat.cpu_percent, stat.processes) == ("7", 100.0, 3)


# ---- fast decoding --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["squeue-22.05.json", "squeue-24.05-variant.json"])
def test_slim_decoding_parses_the_same(name: str) -> None:
    data = (GOLDEN / name).read_bytes()
    assert jobs_to_tasks(decode.jobs(data)) == jobs_to_tasks(load(name))


def test_decoding_odd_documents() -> None:
    assert decode.jobs(b'{"jobs": [null, 3]}')["jobs"] == [None, 3]  # full decode fallback
    assert jobs_to_tasks(decode.jobs(b'{"jobs": [null, 3]}')) == []
    with pytest.raises(ValueError):
        decode.jobs(b"squeue: error: not json")
    with pytest.raises(ValueError):
        decode.document(b"[1, 2]")


def test_active_filter_agrees_with_the_parse() -> None:
    for job in load("squeue-22.05.json")["jobs"] + load("squeue-24.05-variant.json")["jobs"]:
        assert parse.is_active(job) == jobs_to_tasks({"jobs": [job]})[0].state.active
