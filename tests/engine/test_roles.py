"""Roles on the embedded engine with three logical agents (a0 a1 a2, one cpu each): the default
role (the engine user's name), quota limits that make a launch wait with the reason and start
when room appears, weights in the DRF order, dynamic reservations, persistence across a
restart, and bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dshell.errors import ExitCode
from dshell.testing.fixtures import CliRunner

from dshell_local import control
from dshell_local.allocator import DEFAULT_ROLE

from .conftest import wait_until
from .helpers import node, ok, task

AGENTS = "".join(
    f'[[agents]]\nid = "a{i}"\nhostname = "h{i}"\ncpus = 1\nmem = 1024\ndisk = 100\n'
    f"ports = [[{35000 + 20 * i}, {35019 + 20 * i}]]\n"
    for i in range(3)
)


def run(cli: CliRunner, args: str) -> str:
    return ok(cli, f"run -d {args} -- sleep 300").strip()


def running(cli: CliRunner, ident: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (t := task(cli, ident))["state"] == "RUNNING" and t, what=f"{ident} running"
    )


def waiting_with(cli: CliRunner, ident: str, text: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (
            (t := task(cli, ident))["state"] == "STAGING" and text in (t.get("message") or "") and t
        ),
        what=f"{ident} waiting with {text!r}",
    )


def quotas(cli: CliRunner) -> dict[str, dict[str, Any]]:
    return {q["role"]: q for q in json.loads(ok(cli, "quota ls -o json"))}


@pytest.fixture
def three(engine_dirs: Path, engine_config: Callable[[str], Path]) -> None:
    engine_config(AGENTS)
    control.start()


@pytest.mark.engine
def test_default_role_is_the_user_name(three: None, cli: CliRunner) -> None:
    assert DEFAULT_ROLE not in ("", "*")
    mine = run(cli, "--cpus 0.1")
    other = run(cli, "--cpus 0.1 --role alice")
    assert running(cli, mine)["role"] == DEFAULT_ROLE
    assert running(cli, other)["role"] == "alice"
    rows = {line.split("\t")[1]: line.split("\t") for line in ok(cli, "ps -o wide").splitlines()}
    assert DEFAULT_ROLE in rows[mine] and "alice" in rows[other], rows


@pytest.mark.engine
def test_quota_makes_a_launch_wait_then_start(three: None, cli: CliRunner) -> None:
    ok(cli, "quota set alice cpus=0.5 mem=512")
    first = run(cli, "--role alice --cpus 0.4")
    running(cli, first)
    second = run(cli, "--role alice --cpus 0.4")
    waiting_with(cli, second, "role alice: quota cpus 0.5 — 0.4 allocated, 0.4 asked")
    assert "role alice: quota" in ok(cli, "ps -o wide")
    other = run(cli, "--role bob --cpus 0.4")  # other roles are not held back
    running(cli, other)
    q = quotas(cli)["alice"]
    assert q["limits"] == {"cpus": 0.5, "mem": 512} and q["allocated"]["cpus"] == 0.4
    assert q["pending"] == 1
    ok(cli, f"kill {first}")
    running(cli, second)
    big = run(cli, "--role alice --cpus 1")  # more than the whole quota: accepted, waits
    waiting_with(cli, big, "more than the whole quota")
    ok(cli, "quota rm alice")
    running(cli, big)
    assert "alice" not in quotas(cli) or not quotas(cli)["alice"].get("limits")


@pytest.mark.engine
def test_weights_are_set_and_shown(three: None, cli: CliRunner) -> None:
    ok(cli, "quota set batch weight=3")
    assert quotas(cli)["batch"]["weight"] == 3
    assert "batch" in ok(cli, "quota ls")
    ok(cli, "quota rm batch")
    assert "batch" not in quotas(cli)


def test_weights_order_contending_roles() -> None:
    """Two roles with ten small tasks each on a one-cpu agent: weight 3 against 1 gets about
    three quarters of it (equal weights would split it evenly)."""
    from dshell.model import Resources

    from dshell_local import constraints as c
    from dshell_local.allocator import Allocator
    from dshell_local.config import AgentSpec, RoleConfig
    from dshell_local.framework import MetaFramework

    def placed(weights: dict[str, float]) -> dict[str, int]:
        spec = AgentSpec(id="a0", hostname="h0", cpus=1, mem=1024, disk=10, ports=[])
        alloc = Allocator([spec], {r: RoleConfig(weight=w) for r, w in weights.items()})
        fw = MetaFramework(c.sites_of(alloc.agents.values()))
        for i in range(10):
            for role in ("heavy", "light"):
                fw.add(f"{role}{i}", role, Resources(cpus=0.1, mem=1))
        grants = alloc.cycle([fw])
        return {r: sum(g.role == r for g in grants) for r in ("heavy", "light")}

    assert placed({"heavy": 1, "light": 1}) == {"heavy": 5, "light": 5}
    got = placed({"heavy": 3, "light": 1})
    assert got["heavy"] + got["light"] == 10 and got["heavy"] >= 7, got


@pytest.mark.engine
def test_reservations_keep_other_roles_off_and_survive_a_restart(
    three: None, cli: CliRunner
) -> None:
    ok(cli, "reserve a0 alice cpus=1 mem=512")
    a0 = node(cli, "a0")
    assert a0["reserved"]["cpus"] == 1 and a0["reservations"]["alice"]["mem"] == 512
    assert "alice:cpus=1/mem=512" in ok(cli, "nodes -o wide")
    snap = json.loads(ok(cli, "top -n 1 -o json"))
    assert next(a for a in snap["agents"] if a["id"] == "a0")["reserved"]["cpus"] == 1
    bobs = [run(cli, "--role bob --cpus 1") for _ in range(3)]
    placed = {running(cli, t)["agent_id"] for t in bobs[:2]}
    assert placed == {"a1", "a2"}
    waiting_with(cli, bobs[2], "a0: cpus 1 > free 0")  # a0's cpu is alice's
    mine = run(cli, "--role alice --cpus 1")
    assert running(cli, mine)["agent_id"] == "a0"  # the owner uses its reservation
    # over-large: a0 is all reserved, a1 all allocated
    for line in ("reserve a0 carol cpus=0.5", "reserve a1 carol cpus=0.5"):
        res = cli(line)
        assert res.status == ExitCode.USAGE and "unreserved, unallocated" in res.stderr, line
    ok(cli, "quota set alice cpus=2")
    assert control.stop()
    control.start()
    assert node(cli, "a0")["reservations"]["alice"]["cpus"] == 1
    assert quotas(cli)["alice"]["limits"] == {"cpus": 2}
    ok(cli, f"kill {mine}")
    assert task(cli, bobs[2])["state"] == "STAGING"  # still reserved for alice
    ok(cli, "unreserve a0 alice")
    assert running(cli, bobs[2])["agent_id"] == "a0"
    assert not node(cli, "a0").get("reservations")


@pytest.mark.engine
def test_bad_input_is_refused(three: None, cli: CliRunner) -> None:
    cases = {
        "quota set alice cpus=-1": ExitCode.USAGE,
        "quota set alice cpus=lots": ExitCode.USAGE,
        "quota set alice gpus=1": ExitCode.USAGE,
        "quota set alice weight=0": ExitCode.USAGE,
        "quota set 'a/b' cpus=1": ExitCode.USAGE,
        "quota rm nobody": ExitCode.NOT_FOUND,
        "reserve nosuch alice cpus=1": ExitCode.NOT_FOUND,
        "reserve a0 alice mem=-5": ExitCode.USAGE,
        "reserve a0 alice cpus=2": ExitCode.USAGE,
        "reserve a0 alice": ExitCode.USAGE,
        "unreserve a0 nobody": ExitCode.NOT_FOUND,
        "unreserve nosuch alice": ExitCode.NOT_FOUND,
    }
    for line, code in cases.items():
        res = cli(line)
        assert res.status == code, f"{line}: {res.status} {res.stderr}"
        assert res.stderr.strip(), line
    assert "no agent 'nosuch' (agents: a0, a1, a2)" in cli("reserve nosuch alice cpus=1").stderr
    assert quotas(cli) == {} and not node(cli, "a0").get("reservations")


def test_a_backend_without_quotas_answers_unsupported(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dshell.backend import Capability, Mount
    from dshell.namespace import MountTable

    from dshell_slurm.backend import SlurmBackend

    assert Capability.QUOTA not in SlurmBackend.capabilities
    assert Capability.RESERVATIONS not in SlurmBackend.capabilities
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    caps = {"caps": "tasks,agents,run,kill"}
    MountTable().update(
        lambda ms: [*ms, Mount(target="/hpc", type="fake", source="fake", options=caps)]
    )
    for line in (
        "quota ls --on /hpc",
        "quota set alice cpus=1 --on /hpc",
        "quota rm alice --on /hpc",
        "reserve n1 alice cpus=1 --on /hpc",
        "unreserve /hpc/agents/n1 alice",
    ):
        res = cli(line)
        assert res.status == ExitCode.UNSUPPORTED and res.stderr.strip(), (line, res.stderr)
