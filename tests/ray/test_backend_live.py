"""The ray backend and ``fw launch ray`` against a real Ray cluster (a head and a worker
node, launched by ``fw launch ray -o workers=1`` on a private embedded engine): the
framework as the host and the ``fw`` verbs see it, the backend contract, the verbs through the
CLI, the network exposure, and ``fw rm`` leaving no process behind.

Marked slow: the module's one cluster takes 20-90 s to start on a loaded 2-core machine
(the tests themselves take a few seconds each). Tests run in file order; the last one removes
the framework.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dshell.errors import ExitCode
from dshell.model import TaskState
from dshell.testing.contract import BackendContract
from dshell.testing.fixtures import CliRunner

from dshell_ray.backend import RayBackend

from .conftest import RayCluster, cluster_pids, ray_cluster

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster("rt", workers=1) as c:
        yield c


@pytest.fixture
def mounted(cluster: RayCluster, cli: CliRunner) -> CliRunner:
    """The CLI with the cluster mounted at /ray (mount -t ray -o token_file=…)."""
    if not any(line.split("\t")[1:2] == ["/ray"] for line in cli("mount").stdout.splitlines()):
        opts = ",".join(f"{k}={v}" for k, v in {**cluster.mount.options, "poll": "0.2"}.items())
        res = cli(f"mount -t ray -o {opts} {cluster.mount.source} /ray")
        assert res.status == 0, res.stderr
    return cli


def ok(cli: CliRunner, line: str) -> str:
    res = cli(line)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def until(backend: RayBackend, task_id: str, state: TaskState, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        task = backend.get_task(task_id)
        if task.state == state:
            return task
        assert time.monotonic() < deadline, f"{task_id}: still {task.state}, not {state}"
        time.sleep(0.2)


def test_the_framework_as_its_host_sees_it(cluster: RayCluster, cli: CliRunner) -> None:
    """fw launch left a head and one task per worker on the host, a mount row that names the
    framework (not an address), and fw ls / ls PATH/fw list it."""
    tasks = json.loads(ok(cli, "ps /local -o json"))
    assert sorted(t["service"] for t in tasks) == ["fw-rt", "fw-rt-workers"]
    row = next(line for line in ok(cli, "mount").splitlines() if "/local/fw/rt\t" in line)
    assert "fw=rt" in row and "127.0.0.1" not in row
    fws = json.loads(ok(cli, "fw ls / -o json"))
    assert [(f["name"], f["kind"], f["state"]) for f in fws] == [("rt", "ray", "RUNNING")]
    assert "rt" in ok(cli, "ls /local/fw")
    nodes = json.loads(ok(cli, "nodes /local/fw/rt -o json"))
    assert len(nodes) == 2 and sum(n["attributes"]["head"] == "true" for n in nodes) == 1
    program = "import ray; ray.init(); print(int(ray.cluster_resources()['CPU']))"
    res = cli(["run", "--on", "/local/fw/rt", "--", "python3", "-c", program])
    assert res.status == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "2"  # one logical CPU per node


LOOPBACK = ("127.0.0.1", "[::ffff:127.0.0.1]")


def _listening(cluster: RayCluster) -> list[tuple[str, int, str]]:
    """(address, port, ss line) of every listening socket of the cluster's processes."""
    pids = set(cluster_pids(cluster.state, cluster.base))
    assert pids
    out = subprocess.run(
        ["ss", "-Hltnup"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found = []
    for line in out.splitlines():
        if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids:
            addr, _, port = line.split()[4].rpartition(":")
            found.append((addr, int(port), line))
    return found


def test_cluster_listens_on_loopback_only_on_allocated_ports(cluster: RayCluster) -> None:
    """Ray's own servers, before any job ran: loopback, and only ports the engine gave."""
    allocated = {ep.port for eps in cluster.endpoints.values() for ep in eps}
    # GCS, dashboard, agents, raylets, object managers…: the agents may still be starting when
    # the cluster first answers, so look until they all listen (every look is checked); on a
    # loaded machine a worker's agent can take longer than the look lasts, so after a minute
    # the servers the cluster cannot run without must have been seen, at least
    deadline = time.monotonic() + 60
    while True:
        found = _listening(cluster)
        for addr, port, line in found:
            assert addr in LOOPBACK, f"listens beyond loopback: {line}"
            assert port in allocated, f"a port the engine did not allocate: {line}"
        if len(found) >= 10:
            break
        if time.monotonic() >= deadline:
            seen = " ".join(line for _, _, line in found)
            raylets = set(re.findall(r'"raylet",pid=(\d+)', seen))
            assert '"gcs_server"' in seen and len(raylets) == 2, f"not listening: {found}"
            break
        time.sleep(0.5)


class TestRayContract(BackendContract):
    @pytest.fixture
    def backend(self, cluster: RayCluster) -> RayBackend:
        return cluster.backend


def test_nodes_are_the_head_and_the_workers(mounted: CliRunner) -> None:
    rows = json.loads(ok(mounted, "nodes /ray -o json"))
    assert sorted(r["attributes"]["head"] for r in rows) == ["false", "true"]
    assert all(r["state"] == "UP" and r["total"]["cpus"] >= 1 for r in rows)
    assert all(r["attributes"]["ip"] == "127.0.0.1" for r in rows)


def test_attached_run_streams_output_and_exits_with_the_job_status(mounted: CliRunner) -> None:
    res = mounted("run --on /ray -- sh -c 'echo out; echo err >&2; exit 7'")
    assert res.status == 7, res.stderr
    assert res.stdout == "out\nerr\n"  # one log per job; Ray's own lines left out


def test_a_ray_program_runs_in_the_cluster(mounted: CliRunner, cluster: RayCluster) -> None:
    program = (
        "import ray\n"
        "ray.init()\n"
        "square = ray.remote(lambda x: x * x)\n"
        "print(sum(ray.get([square.remote(i) for i in range(4)])))\n"
        "print(len(ray.nodes()))\n"
    )
    res = mounted(["run", "--on", "/ray", "--name", "squares", "--", "python3", "-c", program])
    assert res.status == 0, res.stderr
    assert res.stdout.splitlines()[-2:] == ["14", "2"]
    rows = json.loads(ok(mounted, "ps -a /ray -o json"))
    job = next(r for r in rows if r["name"] == "squares")
    assert job["state"] == "FINISHED" and job["exit_code"] == 0
    children = [r for r in rows if r["parent_task"] == job["id"]]
    assert any(r["labels"].get("ray.kind") == "normal_task" for r in children)
    assert any(r["labels"].get("ray.kind") == "actor" for r in children)  # its supervisor
    assert job["id"] not in {r["id"] for r in json.loads(ok(mounted, "ps /ray -o json"))}


def test_detached_run_ps_top_cat_kill(mounted: CliRunner, cluster: RayCluster) -> None:
    job = ok(mounted, "run -d --on /ray --name sleeper -- sh -c 'echo started; sleep 300'").strip()
    assert job.startswith("raysubmit_")
    until(cluster.backend, job, TaskState.RUNNING)
    rows = json.loads(ok(mounted, "ps /ray -o json"))
    assert [(r["id"], r["name"], r["state"]) for r in rows] == [(job, "sleeper", "RUNNING")]
    top = json.loads(ok(mounted, "top -n 1 /ray -o json"))
    assert job in json.dumps(top)
    deadline = time.monotonic() + 60
    while ok(mounted, f"cat /ray/tasks/{job}/stdout") != "started\n":
        assert time.monotonic() < deadline, "the job's output never showed"
        time.sleep(0.2)
    assert "stdout" in ok(mounted, f"ls /ray/tasks/{job}")
    ok(mounted, f"kill /ray/tasks/{job}")
    done = until(cluster.backend, job, TaskState.KILLED)
    assert done.status == 128 + 15
    assert job not in ok(mounted, "ps /ray")


def test_tail_follows_until_the_job_ends(mounted: CliRunner) -> None:
    job = ok(mounted, "run -d --on /ray -- sh -c 'echo one; sleep 3; echo two'").strip()
    res = mounted(f"tail -f /ray/tasks/{job}/stdout")
    assert res.status == 0, res.stderr
    assert res.stdout == "one\ntwo\n"


@pytest.mark.parametrize(
    "line",
    [
        "exec /ray/tasks/{job} -- true",
        "svc ls /ray",
        "kill -s HUP /ray/tasks/{job}",
        "run -d --on /ray --port http -- true",  # attached, a refusal exits 125 (docker run)
        "run -d --on /ray -C hostname:UNIQUE -- true",
        "events /ray",
        "job ls /ray",
    ],
)
def test_unsupported_verbs(mounted: CliRunner, line: str) -> None:
    rows = json.loads(ok(mounted, "ps -a /ray -o json"))
    job = next(r["id"] for r in rows if r["id"].startswith("raysubmit_"))
    res = mounted(line.format(job=job))
    assert res.status == ExitCode.UNSUPPORTED, (line, res.status, res.stderr)
    assert "backend 'ray' does not support" in res.stderr


def test_unknown_job(mounted: CliRunner) -> None:
    assert mounted("cat /ray/tasks/raysubmit_nope/stdout").status == ExitCode.NOT_FOUND


def test_nothing_listens_beyond_loopback_after_the_jobs(cluster: RayCluster) -> None:
    """After the jobs above (drivers, workers, actors came and went): still loopback only."""
    found = _listening(cluster)
    assert found
    beyond = [
        line for addr, _port, line in found if addr not in ("127.0.0.1", "[::ffff:127.0.0.1]")
    ]
    assert not beyond, beyond


def test_fw_rm_leaves_no_process(cluster: RayCluster, cli: CliRunner) -> None:
    assert cluster_pids(cluster.state, cluster.base)
    ok(cli, "fw rm rt")
    deadline = time.monotonic() + 30
    while cluster_pids(cluster.state, cluster.base):
        assert time.monotonic() < deadline, "Ray processes outlived fw rm"
        time.sleep(0.2)
    assert not cluster.base.exists()
    assert "/local/fw/rt" not in ok(cli, "mount")
    assert json.loads(ok(cli, "ps /local -o json")) == []
