"""``fw launch ray --on /hpc``: frameworks hosted by plain tasks on a host without services.

Unit tests (no service needed): the Ray kind's Slurm jobs (:mod:`dshell_ray.slurmhost`) and
its node launcher (:mod:`dshell_ray.jobnode`); the generic core (:mod:`dshell.core.fwjobs`) is
tested in tests/test_fwjobs.py.

Live tests: one Ray cluster (a head job and one worker job) on the test Slurm, launched
through the CLI once for the module, used, then removed with no process left. Needs Slurm
(``SLURM_CONF``, see tests/slurm/conftest.py) and Ray: skipped without them locally, a failure
in CI. Marked slow: two Ray nodes take 20-90 s to start on a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dshell.backend import Mount
from dshell.errors import ExitCode, UnsupportedError, UsageError
from dshell.frameworks import (
    LABEL,
    READY_LABEL,
    LaunchRequest,
    parse_announcements,
    request_labels,
)
from dshell.model import Endpoint, Resources, Task, TaskState
from dshell.testing.fixtures import Dirs, Result, run_cli

from conftest import proc_pids
from dshell_ray import jobnode
from dshell_ray.slurmhost import RayOnSlurm
from slurm.conftest import slurm_conf, slurm_workdir  # noqa: F401 - the session's Slurm

from .conftest import _kill, ray_installed


def test_the_ray_kind_runs_as_slurm_jobs() -> None:
    from dshell_ray.fwkind import RayKind

    assert RayKind.job_form == "dshell_ray.slurmhost:RayOnSlurm"
    assert isinstance(RayKind().job_hosted(_slurm_host()), RayOnSlurm)


# ---- the Ray kind's jobs ----------------------------------------------------------------------


def _slurm_host(source: str = "localhost") -> Any:
    return SimpleNamespace(
        name="slurm", mount=Mount(target="/hpc", type="slurm", source=source), runner=None
    )


def _ray_req(**options: str) -> LaunchRequest:
    return LaunchRequest(
        name="ml",
        kind="ray",
        host="/hpc",
        options={"python": "/usr/bin/python3", **options},
        resources=Resources(cpus=2, mem=3000),
    )


def test_ray_slurm_jobs_in_two_stages() -> None:
    from dshell_slurm.submit import Defaults, sbatch_args

    host, hosted, req = _slurm_host(), RayOnSlurm(), _ray_req(workers="2")
    hosted.check(host, req)
    (head,) = hosted.jobs(host, req, {})
    assert head.name == "fw-ml" and head.shell and head.instances == 1
    words = shlex.split(head.command[0])
    assert words[:5] == ["exec", "/usr/bin/python3", "-m", "dshell_ray.jobnode", "head"]
    assert "--dir=.dshell/fw/ml" in words and "--overhead=1024" in words
    share = (3000 - 1024 - 2 * 384) / 3
    assert head.resources.cpus == pytest.approx(2 / 3)
    assert head.resources.mem == pytest.approx(1024 + share)
    assert head.labels[READY_LABEL] == "dashboard /api/gcs_healthz"
    gcs = Endpoint(
        service="fw-ml", task_id="7", instance=0, port_name="gcs", host="10.1.2.3", port=6379
    )
    (workers,) = hosted.jobs(host, req, {"fw-ml": [gcs]})
    assert workers.name == "fw-ml-workers" and workers.instances == 2
    assert "--gcs=10.1.2.3:6379" in shlex.split(workers.command[0])
    assert workers.labels[READY_LABEL] == "agent_http /api/local_raylet_healthz"
    assert hosted.jobs(host, req, {"fw-ml": [gcs], "fw-ml-workers": []}) == []
    assert hosted.jobs(host, _ray_req(workers="0"), {"fw-ml": [gcs]}) == []
    workers.labels = {**workers.labels, **request_labels(req)}
    argv, script = sbatch_args(workers, Defaults())
    assert "--array=0-1" in argv and "--cpus-per-task=1" in argv
    assert f"--mem={int(384 + share) + 1}M" in argv
    comment = next(a for a in argv if a.startswith("--comment="))
    assert '"dshell.fw":"ml"' in comment and "dshell.fw.request" in comment
    assert script is not None and b"exec /usr/bin/python3 -m dshell_ray.jobnode worker" in script


@pytest.mark.parametrize(
    ("options", "resources", "error", "text"),
    [
        ({"bogus": "1"}, None, UsageError, "no option 'bogus'"),
        ({"python": "python3"}, None, UsageError, "-o python='python3': expected an absolute"),
        ({"workers": "x"}, None, UsageError, "-o workers='x'"),
        ({}, Resources(cpus=2, mem=1500), UsageError, "--mem 1500 MiB is too little"),
    ],
)
def test_ray_slurm_check_refuses_before_submitting(
    options: dict[str, str], resources: Resources | None, error: type, text: str
) -> None:
    req = _ray_req(**options)
    if resources is not None:
        req.resources = resources
    with pytest.raises(error) as err:
        RayOnSlurm().check(_slurm_host(), req)
    assert text in str(err.value)


def test_ray_jobs_only_on_slurm() -> None:
    host = SimpleNamespace(name="mesos", mount=Mount(target="/m", type="mesos", source="x"))
    with pytest.raises(UnsupportedError) as err:
        RayOnSlurm().check(host, _ray_req())
    assert "Slurm hosts only" in str(err.value)


def test_ray_mount_source_is_the_announced_dashboard_and_the_heads_token() -> None:
    host, hosted, req = _slurm_host(), RayOnSlurm(), _ray_req()
    dash = Endpoint(
        service="fw-ml", task_id="7", instance=0, port_name="dashboard", host="::1", port=8265
    )
    head = Task(id="7", name="fw-ml", state=TaskState.RUNNING, sandbox="/home/me/work")
    source, opts = hosted.mount_source(host, req, {"fw-ml": [dash]}, [head])
    assert source == "http://[::1]:8265"
    assert opts == {"token_file": "/home/me/work/.dshell/fw/ml/token"}


# ---- the node launcher ------------------------------------------------------------------------


def test_jobnode_refuses_an_unspecified_address() -> None:
    for bad in ("0.0.0.0", "::"):
        with pytest.raises(SystemExit) as err:
            jobnode.node_address(bad, {})
        assert err.value.code == 2
    assert jobnode.node_address("127.0.0.1", {"SLURMD_NODENAME": "n1"}) == "127.0.0.1"


def test_jobnode_pins_every_port_on_the_node_address() -> None:
    names = [*jobnode.HEAD_PORTS, "w0", "w1", "w2"]
    ports = jobnode.free_ports("127.0.0.1", names)
    assert len(set(ports.values())) == len(names) and all(p > 0 for p in ports.values())
    args = SimpleNamespace(cpus=None, mem=None, overhead=1024.0)
    env = {"SLURM_CPUS_ON_NODE": "2", "SLURM_MEM_PER_NODE": "2024"}
    res = jobnode.node_resources(args, env)  # type: ignore[arg-type]
    assert res == [  # 2024 - 1024 MiB: 30% object store, the rest for tasks and actors
        "--num-cpus=2",
        f"--memory={700 * 1024 * 1024}",
        f"--object-store-memory={300 * 1024 * 1024}",
    ]
    argv = jobnode.ray_argv("head", "127.0.0.1", ports, "", res, "/tmp/drayX")
    assert "--dashboard-host=127.0.0.1" in argv and f"--port={ports['gcs']}" in argv
    assert argv[3] == "127.0.0.1"  # dshell_ray.node's address argument
    env = jobnode.ray_env({"RAY_AUTH_TOKEN": "x"}, "head", ports, Path("/d"), "m1")
    assert env["RAY_AUTH_TOKEN_PATH"] == "/d/token" and "RAY_AUTH_TOKEN" not in env
    line = " ".join(argv) + f" {env['DASHBOARD_METRIC_PORT']} {env['AUTOSCALER_METRIC_PORT']}"
    for name, port in ports.items():
        assert str(port) in line, name
    assert "0.0.0.0" not in line
    worker = jobnode.ray_argv("worker", "127.0.0.1", ports, "127.0.0.1:6379", res, "/t")
    assert "--address=127.0.0.1:6379" in worker and "--head" not in worker


def test_jobnode_refuses_a_share_smaller_than_rays_own_processes() -> None:
    args = SimpleNamespace(cpus=1, mem=1100.0, overhead=1024.0)
    with pytest.raises(SystemExit):
        jobnode.node_resources(args, {})  # type: ignore[arg-type]


# ---- live: one Ray cluster on the test Slurm -------------------------------------------------

NAME = "slt"
BACKENDS = "slurm=dshell_slurm.backend:SlurmBackend"


def ok(line: str | list[str]) -> str:
    res = run_cli(line, width=200)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def cluster_pids(conf: str) -> list[int]:
    """Live processes of this module's Ray cluster: jobs of this Slurm (their environment
    names its SLURM_CONF) that are a Ray node launcher or one of the processes it started."""
    conf_marker = f"SLURM_CONF={conf}\0".encode()
    return proc_pids(
        lambda env, cmd: (
            conf_marker in env and (b"DSHELL_RAY_NODE=" in env or b"dshell_ray.jobnode" in cmd)
        )
    )


@pytest.mark.timeout(300)
def test_bad_launches_on_slurm_leave_nothing(
    dshell_dirs: Dirs,
    monkeypatch: pytest.MonkeyPatch,
    slurm_conf: str,  # noqa: F811
    slurm_workdir: str,  # noqa: F811
) -> None:
    """Refused before anything is submitted (exit 2), or a head job that cannot start: the
    launch fails (exit 1, naming the job and quoting its stderr) and cancels what it
    submitted. No Ray process is started either way."""
    monkeypatch.setenv("DSHELL_BACKENDS", BACKENDS)
    opts = f"slurm_conf={slurm_conf},workdir={slurm_workdir},poll=0.2"
    ok(["mount", "-t", "slurm", "-o", opts, "localhost", "/hpc"])
    bad = run_cli("fw launch ray --name bad --on /hpc -o bogus=1 --cpus 2 --mem 3000")
    assert bad.status == ExitCode.USAGE and "no option 'bogus'" in bad.stderr
    line = "fw launch ray --name bad --on /hpc -o python=/nonexistent/python3 --cpus 2 --mem 3000"
    failed = run_cli(line)
    assert failed.status == ExitCode.ERROR, failed.stderr
    assert "(fw-bad) ended during launch" in failed.stderr and "/nonexistent" in failed.stderr
    rows = json.loads(ok("ps -a /hpc -o json"))
    mine = [r for r in rows if r.get("labels", {}).get(LABEL) == "bad"]
    assert mine and all(r["name"] == "fw-bad" and r["state"] == "FAILED" for r in mine)
    assert "/hpc/fw/bad" not in ok("mount")
    assert "bad" not in {f["name"] for f in json.loads(ok("fw ls /hpc -o json"))}


@dataclass
class HpcRay:
    conf: str
    workdir: str
    cli: Callable[[str | list[str]], Result]


@pytest.fixture(scope="module")
def hpc_ray(slurm_conf: str, slurm_workdir: str) -> Iterator[HpcRay]:  # noqa: F811
    """Slurm mounted at /hpc and a Ray cluster launched on it, in private dshell dirs."""
    ray_installed()
    tmp = Path(tempfile.mkdtemp(prefix="dsfs"))
    runtime = Path(tempfile.mkdtemp(prefix="dr", dir="/tmp"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSHELL_CONFIG_DIR", str(tmp / "config"))
        mp.setenv("DSHELL_STATE_DIR", str(tmp / "state"))
        mp.setenv("DSHELL_RUNTIME_DIR", str(runtime))
        mp.setenv("DSHELL_BACKENDS", BACKENDS)
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        try:
            opts = f"slurm_conf={slurm_conf},workdir={slurm_workdir},poll=0.2"
            ok(["mount", "-t", "slurm", "-o", opts, "localhost", "/hpc"])
            ok(f"fw launch ray --name {NAME} --on /hpc -o workers=1 --cpus 2 --mem 3000")
            yield HpcRay(slurm_conf, slurm_workdir, run_cli)
        finally:
            with contextlib.suppress(Exception):
                run_cli(f"fw rm /hpc/fw/{NAME}")
            _kill(cluster_pids(slurm_conf))
            import shutil

            shutil.rmtree(runtime, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ps_shows_the_head_and_each_worker(hpc_ray: HpcRay) -> None:
    rows = json.loads(ok("ps /hpc -o json"))
    mine = [r for r in rows if r.get("labels", {}).get(LABEL) == NAME]
    assert sorted((r["name"], r["state"]) for r in mine) == [
        (f"fw-{NAME}", "RUNNING"),
        (f"fw-{NAME}-workers", "RUNNING"),
    ]
    fws = json.loads(ok("fw ls /hpc -o json"))
    assert [(f["name"], f["kind"], f["host"], f["state"]) for f in fws] == [
        (NAME, "ray", "/hpc", "RUNNING")
    ]
    assert fws[0]["resources"]["cpus"] == 2 and fws[0]["resources"]["mem"] == 3000
    again = hpc_ray.cli(f"fw launch ray --name {NAME} --on /hpc --cpus 2 --mem 3000")
    assert again.status == ExitCode.CONFLICT, again.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_ray_mount_runs_jobs_on_both_nodes(hpc_ray: HpcRay) -> None:
    nodes = json.loads(ok(f"nodes /hpc/fw/{NAME} -o json"))
    assert len(nodes) == 2 and sum(n["attributes"]["head"] == "true" for n in nodes) == 1
    program = (
        "import ray; ray.init(); print(int(ray.cluster_resources()['CPU'])); raise SystemExit(3)"
    )
    res = hpc_ray.cli(["run", "--on", f"/hpc/fw/{NAME}", "--", "python3", "-c", program])
    assert res.status == 3, res.stderr
    assert res.stdout.splitlines()[-1] == "2"  # one logical CPU per node: its Slurm share


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_nothing_of_the_cluster_listens_on_all_interfaces(hpc_ray: HpcRay) -> None:
    pids = set(cluster_pids(hpc_ray.conf))
    assert pids
    out = subprocess.run(
        ["ss", "-Hltnp"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    seen = []
    for line in out.splitlines():
        if not {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids:
            continue
        local = line.split()[3]
        seen.append(local)
        assert local.rpartition(":")[0] in ("127.0.0.1", "[::ffff:127.0.0.1]"), line
    rows = json.loads(ok("ps /hpc -o json"))
    head = next(r["id"] for r in rows if r["name"] == f"fw-{NAME}")
    announced = parse_announcements(ok(f"cat /hpc/tasks/{head}/stdout"))
    ports = {int(local.rpartition(":")[2]) for local in seen}
    assert {announced["gcs"][1], announced["dashboard"][1]} <= ports  # the scan saw Ray


def _dashboard(head_job: str) -> tuple[str, int]:
    """The dashboard the head job announced last."""
    return parse_announcements(ok(f"cat /hpc/tasks/{head_job}/stdout"))["dashboard"]


def _up_nodes() -> int:
    res = run_cli(f"nodes /hpc/fw/{NAME} -o json")
    return sum(n["state"] == "UP" for n in json.loads(res.stdout)) if res.status == 0 else -1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_dead_ray_process_is_restarted_in_its_job_and_remounted(hpc_ray: HpcRay) -> None:
    rows = json.loads(ok("ps /hpc -o json"))
    jobs = sorted(r["id"] for r in rows if r.get("labels", {}).get(LABEL) == NAME)
    head = next(r["id"] for r in rows if r["name"] == f"fw-{NAME}")
    before = _dashboard(head)
    pids = cluster_pids(hpc_ray.conf)
    gcs = [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == "gcs_server"]
    assert len(gcs) == 1
    os.kill(gcs[0], 9)  # the head's `ray start` ends; its job starts Ray again on new ports
    deadline = time.monotonic() + 240  # a bound, not a measurement: Ray restarts in 10-60 s
    while _dashboard(head) == before or _up_nodes() != 2:  # the worker rejoins the new head
        assert time.monotonic() < deadline, "the Ray cluster did not come back"
        time.sleep(2)
    rows = json.loads(ok("ps /hpc -o json"))  # the same jobs: restarted inside, not resubmitted
    assert sorted(r["id"] for r in rows if r.get("labels", {}).get(LABEL) == NAME) == jobs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fw_rm_cancels_the_jobs_and_leaves_no_process(hpc_ray: HpcRay) -> None:
    token_dir = Path(hpc_ray.workdir) / ".dshell" / "fw" / NAME
    assert (token_dir / "token").stat().st_mode & 0o777 == 0o600
    ok(f"fw rm {NAME}")
    assert cluster_pids(hpc_ray.conf) == []  # fw rm waits until the jobs have ended
    rows = json.loads(ok("ps -a /hpc -o json"))
    mine = [r for r in rows if r.get("labels", {}).get(LABEL) == NAME]
    assert mine and all(r["state"] == "KILLED" for r in mine)
    assert f"/hpc/fw/{NAME}" not in ok("mount")
    assert not token_dir.exists()
    assert json.loads(ok("fw ls /hpc -o json")) == []
