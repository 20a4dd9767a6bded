"""The Slurm backend behind dshell's own verbs: mount, run, ps, cat, kill, nodes, exec."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dshell.errors import ExitCode
from dshell.testing.fixtures import CliRunner

from .conftest import BACKENDS, PLUGINS


@pytest.fixture
def hpc(
    dshell_dirs: Any,
    monkeypatch: pytest.MonkeyPatch,
    slurm_conf: str,
    slurm_workdir: str,
    cli: CliRunner,
) -> CliRunner:
    """dshell with the cluster mounted at /hpc."""
    monkeypatch.setenv("DSHELL_BACKENDS", BACKENDS)
    opts = f"slurm_conf={slurm_conf},workdir={slurm_workdir},poll=0.2"
    result = cli(["mount", "-t", "slurm", "-o", opts, "localhost", "/hpc"])
    assert result.status == 0, result.stderr
    return cli


def test_mount_validation(
    dshell_dirs: Any, monkeypatch: pytest.MonkeyPatch, cli: CliRunner
) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", BACKENDS)
    bad = cli("mount -t slurm ftp://login /x")
    assert bad.status == ExitCode.USAGE and "ftp://login" in bad.stderr
    listing = cli("mount -t slurm -o listing=xml localhost /x")
    assert listing.status == ExitCode.USAGE and "listing='xml'" in listing.stderr
    monkeypatch.setenv("PATH", "/nonexistent")
    missing = cli("mount -t slurm localhost /x")
    assert missing.status == ExitCode.UNREACHABLE and "squeue" in missing.stderr
    assert "/x" not in cli("mount --output json").stdout  # nothing was mounted


def test_attached_run_streams_and_exits_with_status(hpc: CliRunner) -> None:
    result = hpc(["run", "--on", "/hpc", "--", "sh", "-c", "echo hi; echo err >&2; exit 3"])
    assert (result.status, result.stdout) == (3, "hi\n"), result.stderr
    assert "err" in result.stderr


def test_detached_run_ps_cat_kill(hpc: CliRunner) -> None:
    job = hpc("run -d --on /hpc --name cli-job -- sh -c 'echo started; sleep 300'")
    assert job.status == 0, job.stderr
    task_id = job.stdout.strip()
    assert task_id.isdigit()
    listed = {t["id"]: t for t in json.loads(hpc("ps /hpc -o json").stdout)}
    assert listed[task_id]["name"] == "cli-job" and listed[task_id]["mount"] == "/hpc"
    waited = hpc(f"wait --for RUNNING --timeout 60 /hpc/{task_id}")
    assert waited.status == 0, waited.stderr
    killed = hpc(f"kill /hpc/{task_id}")
    assert killed.status == 0, killed.stderr
    assert hpc(f"wait --timeout 60 /hpc/{task_id}").status == 0
    shown = json.loads(hpc(f"inspect /hpc/{task_id} -o json").stdout)
    assert shown["state"] == "KILLED" and shown["backend"] == "slurm"
    assert hpc(f"cat /hpc/tasks/{task_id}/stdout").stdout == "started\n"


def test_nodes_and_unsupported_verbs(hpc: CliRunner) -> None:
    nodes = json.loads(hpc("nodes /hpc -o json").stdout)
    assert {n["id"] for n in nodes} >= {"n1", "n2"}
    assert all(n["kind"] == "Agent" and n["total"]["cpus"] == 2 for n in nodes)
    svc = hpc("svc ls /hpc")
    assert svc.status == ExitCode.UNSUPPORTED and "does not support services" in svc.stderr


def test_drain_and_nodes_up_verbs(hpc: CliRunner) -> None:
    try:
        r = hpc("drain n2 --on /hpc --reason 'dshell cli test'")
        assert r.status == 0 and "/hpc/agents/n2" in r.stderr, r.stderr
        row = {n["id"]: n for n in json.loads(hpc("nodes /hpc -o json").stdout)}["n2"]
        assert row["state"] in ("DRAINING", "DRAINED") and row["reason"] == "dshell cli test"
        assert hpc("drain /hpc/agents/nosuch").status == ExitCode.NOT_FOUND
    finally:
        assert hpc("nodes up /hpc/agents/n2").status == 0
    row = {n["id"]: n for n in json.loads(hpc("nodes /hpc -o json").stdout)}["n2"]
    assert row["state"] == "UP"


def test_drain_wait_and_unsupported_maintenance(hpc: CliRunner) -> None:
    """Slurm drains (an idle node is DRAINED at once, so --wait returns) but has no
    maintenance windows, attribute changes nor --grace: exit 10 naming what is missing."""
    try:
        r = hpc("drain n2 --on /hpc --wait --timeout 60s -o json")
        assert r.status == 0, r.stderr
        assert json.loads(r.stdout)[0]["state"] == "DRAINED"
        grace = hpc("drain n2 --on /hpc --grace 5s")
        assert grace.status == ExitCode.UNSUPPORTED and "--grace" in grace.stderr
    finally:
        assert hpc("nodes up /hpc/agents/n2").status == 0
    for line, what in [
        ("maint ls --on /hpc", "maintenance windows"),
        ("maint schedule /hpc/agents/n1 --start now+1h --duration 1h", "maintenance windows"),
        ("maint cancel /hpc/agents/n1", "maintenance windows"),
        ("nodes attr /hpc/agents/n1 rack=r1", "changing node attributes"),
    ]:
        res = hpc(line)
        assert res.status == ExitCode.UNSUPPORTED and what in res.stderr, (line, res.stderr)


def test_run_after_and_partition(hpc: CliRunner) -> None:
    first = hpc("run -d --on /hpc --name cli-first --partition debug -- sleep 1")
    assert first.status == 0, first.stderr
    first_id = first.stdout.strip()
    second = hpc(f"run --on /hpc --after {first_id} --partition debug -- echo after")
    assert (second.status, second.stdout) == (0, "after\n"), second.stderr
    shown = json.loads(hpc(f"inspect /hpc/{first_id} -o json").stdout)
    assert shown["state"] == "FINISHED" and shown["labels"]["slurm/partition"] == "debug"
    bad = hpc("run -d --on /hpc --partition nosuch -- true")
    assert bad.status != 0 and "nosuch" in bad.stderr.lower()
    local = hpc("run -d --on /local --partition debug -- true")
    assert local.status == ExitCode.UNSUPPORTED and "partitions" in local.stderr


def test_the_scripted_listing_starts_squeue_early_with_the_same_rows(
    hpc: CliRunner, dshell_exe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dshell ps`` as its own process: the early squeue (tests/slurm/test_early.py) against
    the real Slurm lists what the command tree lists."""
    monkeypatch.setenv("PYTHONPATH", PLUGINS)
    job = hpc("run -d --on /hpc --name early-job -- sleep 300")
    assert job.status == 0, job.stderr
    task_id = job.stdout.strip()
    try:
        fast = dshell_exe("ps", "/hpc", "-o", "tsv")
        tree = dshell_exe("ps", "/hpc", "-o", "tsv", env={"DSHELL_NO_FASTPATH": "1"})
        assert fast.returncode == tree.returncode == 0, fast.stderr + tree.stderr
        mine = [line for line in fast.stdout.splitlines() if f"\t{task_id}\t" in line]
        assert len(mine) == 1 and "early-job" in mine[0]
        assert fast.stdout.splitlines()[0] == tree.stdout.splitlines()[0]  # the header
        assert [line.split("\t")[:3] for line in fast.stdout.splitlines()] == [
            line.split("\t")[:3] for line in tree.stdout.splitlines()
        ]  # mount, id, name of every row (states may move between the two listings)
    finally:
        hpc(f"kill /hpc/{task_id}")
