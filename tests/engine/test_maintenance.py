"""Agent maintenance on the embedded engine with three logical agents (a0 a1 in rack r1, a2 in
r2): drains that move service instances without going below their minimum health capacity,
a constraint that blocks a drain, plain tasks and batch runs killed after their grace,
`drain --wait`, `nodes up`, persistence across a restart, maintenance windows on the test
clock, `nodes attr` and constraints, and bad input.

Service instances are ``svcapp.py``: they report ``ready`` and ``end`` to a collector file, so
"never below the minimum health capacity" is checked on the order of events, not by sampling.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dshell.errors import ExitCode, UsageError
from dshell.maintenance import (
    attribute_problem,
    parse_attr_changes,
    parse_when,
    rfc3339,
    window_duration,
)
from dshell.testing.fixtures import CliRunner

from dshell_local import control

from .conftest import wait_until
from .helpers import node, ok, task

APP = Path(__file__).with_name("svcapp.py")
T0 = 1_900_000_000.0  # the test clock's start (2030-03-17T17:46:40Z)

AGENTS = "".join(
    f'[[agents]]\nid = "a{i}"\nhostname = "h{i}"\ncpus = 1\nmem = 1024\ndisk = 100\n'
    f'ports = [[{34000 + 20 * i}, {34019 + 20 * i}]]\nattributes = {{ rack = "{rack}" }}\n'
    for i, rack in enumerate(("r1", "r1", "r2"))
)


def state_of(cli: CliRunner, ident: str, want: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (n := node(cli, ident))["state"] == want and n, what=f"{ident} {want}"
    )


def service_file(tmp: Path) -> Path:
    path = tmp / "web.toml"
    path.write_text(f"""
[service]
name = "web"
command = ["{sys.executable}", "{APP}", "{tmp / "events"}"]
instances = 2
ports = ["http"]
resources = {{ cpus = 0.05, mem = 64 }}
constraints = ["hostname:UNIQUE"]
kill_grace_period = 2

[service.upgrade_strategy]
minimum_health_capacity = 1.0
maximum_over_capacity = 0.0

[[service.health_checks]]
protocol = "HTTP"
port_name = "http"
path = "/health"
delay = 0
interval = 0.1
timeout = 1
grace_period = 5
max_consecutive_failures = 2
""")
    return path


def min_serving(tmp: Path) -> int:
    """The fewest instances answering at any point after the first two were up."""
    up: set[str] = set()
    low = None
    for line in (tmp / "events").read_text().splitlines():
        kind, ident = line.split()[:2]
        if kind == "ready":
            up.add(ident)
        elif kind == "end":
            up.discard(ident)
        if low is not None or len(up) >= 2:
            low = len(up) if low is None else min(low, len(up))
    return low or 0


def agents_of(cli: CliRunner) -> list[str]:
    members = json.loads(ok(cli, "svc status web -o json"))["members"]
    return sorted(m["agent_id"] for m in members if m["state"] == "RUNNING")


def interrupted(argv: list[str]) -> None:
    """Run ``dshell ARGV`` until it reports progress, then Ctrl-C it: exit 130, saying the
    drain goes on."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "dshell", *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ),
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first progress line: it is waiting
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(30) == ExitCode.INTERRUPTED, first + rest
    assert "the drain of a1 goes on" in rest, first + rest


@pytest.fixture
def three(engine_dirs: Path, engine_config: Callable[[str], Path]) -> None:
    engine_config(AGENTS)
    control.start()


@pytest.mark.engine
def test_drain_moves_kills_waits_blocks_and_nodes_up(
    three: None, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, f"svc deploy -f {service_file(tmp_path)} --timeout 60")
    assert agents_of(cli) == ["a0", "a1"]
    members = json.loads(ok(cli, "svc status web -o json"))["members"]
    moved = next(m["task_id"] for m in members if m["agent_id"] == "a0")
    stubborn = ok(
        cli, "run -d --constraint hostname:IS:h0 --cpus 0.05 --shell 'trap \"\" TERM; sleep 300'"
    ).strip()
    wait_until(lambda: task(cli, stubborn)["state"] == "RUNNING", what="the plain task")
    ok(cli, "job create --name long --cpus 0.05 -- sleep 300")
    ok(cli, "job run long")
    first = wait_until(
        lambda: [t for t in json.loads(ok(cli, "ps -o json")) if t["name"] == "long"],
        what="the batch run's task",
    )[0]
    assert first["agent_id"] == "a0"

    res = cli("drain a0 --grace 1s -o json")
    assert res.status == 0, res.stderr
    assert json.loads(res.stdout)[0]["state"] == "DRAINING"
    ok(cli, "drain a0 --wait --timeout 60s")
    drained = node(cli, "a0")
    assert drained["state"] == "DRAINED" and drained.get("tasks", 0) == 0

    killed = task(cli, stubborn)  # TERM ignored: SIGKILL after the drain's 1 s grace
    assert killed["state"] == "KILLED" and killed["reason"] == "REASON_AGENT_DRAINING"
    assert killed["signal"] == 9 and "agent a0 was drained" in killed["message"]
    assert agents_of(cli) == ["a1", "a2"]
    assert min_serving(tmp_path) >= 2  # a replacement was serving before an old one ended
    assert task(cli, moved)["reason"] == "REASON_AGENT_DRAINING"
    row = next(r for r in ok(cli, "ps -a -o wide").splitlines() if r.split("\t")[1] == moved)
    assert "moved off agent a0 (maintenance)" in row  # ps shows why it ended
    again = wait_until(
        lambda: [
            t
            for t in json.loads(ok(cli, "ps -o json"))
            if t["name"] == "long" and t["id"] != first["id"] and t.get("agent_id")
        ],
        what="the batch run's next attempt",
    )[0]
    assert again["agent_id"] in ("a1", "a2")  # the same run again, elsewhere
    assert again["labels"]["dshell.job.run"] == first["labels"]["dshell.job.run"]

    # a1's instance can go nowhere: a0 is drained and a2 holds the other (hostname:UNIQUE)
    ok(cli, "drain a1")
    res = cli("drain a1 --wait --timeout 2s")
    assert res.status == ExitCode.TIMEOUT and "the drain goes on" in res.stderr
    blocked = node(cli, "a1")
    assert blocked["state"] == "DRAINING" and "UNIQUE" in blocked["drain"]["blocked"][0]
    interrupted(["drain", "a1", "--wait"])  # Ctrl-C stops the waiting, not the drain
    assert node(cli, "a1")["state"] == "DRAINING"
    waiting = ok(cli, "run -d --constraint hostname:IS:h1 -- sleep 300").strip()
    msg = wait_until(lambda: task(cli, waiting).get("message"), what="a waiting reason")
    assert "a1: DRAINING" in str(msg)
    wide = ok(cli, "nodes -o wide")
    assert "DRAINED" in wide and "blocked" in wide

    ok(cli, "nodes up a0")  # now the instance can move, and a1 drains
    assert state_of(cli, "a0", "UP")["state"] == "UP"
    ok(cli, "drain a1 --wait --timeout 60s")
    assert agents_of(cli) == ["a0", "a2"] and min_serving(tmp_path) >= 2
    ok(cli, "nodes up a1")
    wait_until(lambda: task(cli, waiting)["agent_id"] == "a1", what="the waiting task placed")


@pytest.mark.engine
def test_admin_state_survives_a_restart(three: None, cli: CliRunner) -> None:
    ok(cli, "drain a2 --reason 'disk swap'")
    state_of(cli, "a2", "DRAINED")
    ok(cli, "nodes attr a0 rack=r7 ssd=yes")
    ok(cli, "nodes attr a1 rack-")
    window = json.loads(ok(cli, "maint schedule a0 --start now+1d --duration 1h -o json"))
    assert control.stop()
    control.start()
    assert json.loads(ok(cli, "maint ls -o json")) == window
    a0, a1, a2 = node(cli, "a0"), node(cli, "a1"), node(cli, "a2")
    assert a2["state"] == "DRAINED" and a2["reason"] == "disk swap"
    assert a0["attributes"] == {"rack": "r7", "ssd": "yes"} and a1.get("attributes", {}) == {}
    ok(cli, "nodes up a2")
    assert node(cli, "a2")["state"] == "UP"


@pytest.mark.engine
def test_attributes_steer_new_placements(three: None, cli: CliRunner) -> None:
    ok(cli, "nodes attr a2 rack=r9")
    first = ok(cli, "run -d --constraint rack:IS:r9 -- sleep 300").strip()
    wait_until(lambda: task(cli, first)["agent_id"] == "a2", what="placed on a2")
    ok(cli, "nodes attr a2 rack=r2")
    ok(cli, "nodes attr a1 rack=r9")
    second = ok(cli, "run -d --constraint rack:IS:r9 -- sleep 300").strip()
    wait_until(lambda: task(cli, second)["agent_id"] == "a1", what="placed on a1")
    wait_until(lambda: task(cli, first)["state"] == "RUNNING", what="the first task running")
    assert task(cli, first)["agent_id"] == "a2"  # already placed: untouched
    assert "rack=r9" in ok(cli, "nodes -o wide")
    assert cli("nodes attr a1 'bad name=x'").status == ExitCode.USAGE
    assert cli("nodes attr a1 zz-").status == ExitCode.USAGE
    assert cli("nodes attr a1 hostname=x").status == ExitCode.USAGE
    assert cli("nodes attr nosuch rack=r1").status == ExitCode.NOT_FOUND


@pytest.fixture
def clock(
    engine_dirs: Path,
    engine_config: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[float], None]:
    path = tmp_path / "clock"

    def set_to(stamp: float) -> None:
        path.write_text(f"{stamp}\n")

    set_to(T0)
    monkeypatch.setenv("DSHELL_ENGINE_CLOCK", str(path))
    engine_config("[engine]\nkill_grace = 60\n" + AGENTS)  # only a DOWN kills at once
    control.start()
    return set_to


def windows(cli: CliRunner) -> list[dict[str, Any]]:
    return json.loads(ok(cli, "maint ls -o json"))  # type: ignore[no-any-return]


@pytest.mark.engine
def test_maintenance_window_on_the_test_clock(
    clock: Callable[[float], None], cli: CliRunner
) -> None:
    start = T0 + 3600
    ok(cli, f"maint schedule a1 --start {rfc3339(start)} --duration 30m")
    later = json.loads(ok(cli, "maint schedule a2 --start now+2h --duration 1h -o json"))[0]
    assert later["start"] == rfc3339(T0 + 7200)  # relative to the engine's clock
    res = cli(f"maint schedule a1 --start {rfc3339(start + 600)} --duration 1h")
    assert res.status == ExitCode.CONFLICT and "overlaps" in res.stderr
    assert [(w["agent"], w["state"]) for w in windows(cli)] == [
        ("a1", "SCHEDULED"),
        ("a2", "SCHEDULED"),
    ]
    ok(cli, "maint cancel a2")
    assert [w["agent"] for w in windows(cli)] == ["a1"]
    sleeper = ok(cli, "run -d --constraint hostname:IS:h1 -- sleep 300").strip()
    stubborn = ok(
        cli, "run -d --constraint hostname:IS:h1 --shell 'trap \"\" TERM; sleep 300'"
    ).strip()
    for ident in (sleeper, stubborn):
        wait_until(lambda i=ident: task(cli, i)["state"] == "RUNNING", what="tasks on a1")
    assert node(cli, "a1")["state"] == "UP"

    clock(start - 300)  # inside the lead time (600 s): drained ahead of the window
    state_of(cli, "a1", "DRAINING")
    wait_until(lambda: task(cli, sleeper)["state"] == "KILLED", what="the sleeper killed")
    assert task(cli, sleeper)["reason"] == "REASON_AGENT_DRAINING"
    assert task(cli, stubborn)["state"] == "KILLING"  # TERM ignored: 60 s of grace
    assert windows(cli)[0]["state"] == "DRAINING"
    clock(start + 60)  # the window starts: DOWN, and what is left is killed at once
    assert "maintenance window 1" in state_of(cli, "a1", "DOWN")["reason"]
    assert windows(cli)[0]["state"] == "ACTIVE"
    killed = wait_until(
        lambda: (t := task(cli, stubborn))["state"] == "KILLED" and t, what="killed at DOWN"
    )
    assert isinstance(killed, dict) and killed["signal"] == 9
    late = ok(cli, "run -d --constraint hostname:IS:h1 -- sleep 300").strip()
    msg = wait_until(lambda: task(cli, late).get("message"), what="why it waits")
    assert "a1: DOWN" in str(msg)
    top = json.loads(ok(cli, "top -n 1 -o json"))
    assert {a["id"]: a["state"] for a in top["agents"]}["a1"] == "DOWN"
    clock(start + 1800 + 1)
    state_of(cli, "a1", "UP")
    assert windows(cli) == []
    wait_until(lambda: task(cli, late)["agent_id"] == "a1", what="placed after the window")


@pytest.mark.engine
def test_bad_input_is_refused_with_clear_errors(three: None, cli: CliRunner) -> None:
    cases = {
        "drain nosuch": ExitCode.NOT_FOUND,
        "drain a0 --grace -5": ExitCode.USAGE,
        "drain a0 --timeout 5s": ExitCode.USAGE,
        "maint schedule a0 --start tomorrow --duration 1h": ExitCode.USAGE,
        "maint schedule a0 --start 2030-01-01T00:00:00 --duration 1h": ExitCode.USAGE,
        "maint schedule a0 --start now+1h --duration 0": ExitCode.USAGE,
        "maint schedule a0 --start now+1h --duration=-5m": ExitCode.USAGE,
        "maint schedule a0 --start now-1h --duration 1h": ExitCode.USAGE,
        "maint schedule a0 --start 2001-01-01T00:00:00Z --duration 1h": ExitCode.USAGE,
        "maint schedule nosuch --start now+1h --duration 1h": ExitCode.NOT_FOUND,
        "maint cancel a0": ExitCode.NOT_FOUND,
        "nodes up nosuch": ExitCode.NOT_FOUND,
    }
    for line, code in cases.items():
        res = cli(line)
        assert res.status == code, f"{line}: {res.status} {res.stderr}"
        assert res.stderr.strip(), line
    assert "no agent 'nosuch' (agents: a0, a1, a2)" in cli("drain nosuch").stderr
    assert node(cli, "a0")["state"] == "UP"  # nothing was drained by the refused lines


# ---- pure helpers ---------------------------------------------------------------------------


def test_parse_when() -> None:
    assert parse_when("now") == (None, 0.0)
    assert parse_when("now+10m") == (None, 600.0)
    assert parse_when("NOW + 1h30m") == (None, 5400.0)
    assert parse_when("2030-03-17T17:46:40Z") == (T0, None)
    assert parse_when("2030-03-17T18:46:40+01:00") == (T0, None)
    for bad, why in [
        ("tomorrow", "RFC 3339"),
        ("2030-03-17T17:46:40", "time zone"),
        ("now-5m", "in the past"),
        ("now+soon", "bad time offset"),
        ("", "RFC 3339"),
    ]:
        with pytest.raises(UsageError, match=why):
            parse_when(bad)


def test_window_duration_and_attributes() -> None:
    assert window_duration("30m") == 1800.0 and window_duration("1h30m") == 5400.0
    for bad in ("0", "0s", "-5m", "400d", "soon"):
        with pytest.raises(UsageError):
            window_duration(bad)
    assert parse_attr_changes(["rack=r1", "ssd-", "zone=eu-west:1"]) == (
        {"rack": "r1", "zone": "eu-west:1"},
        ["ssd"],
    )
    for bad in (["rack"], ["rack=r1", "rack-"], ["=x"], ["rack=a b"], ["rack=a,b"], []):
        with pytest.raises(UsageError):
            parse_attr_changes(bad)
    assert attribute_problem("hostname") is not None
    assert attribute_problem("rack_id", "r1") is None


def test_a_backend_like_slurm_answers_unsupported(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slurm drains nodes but has no maintenance windows nor attribute changes: exit 10,
    naming the capability (shown on the fake backend with Slurm's capabilities)."""
    from dshell.backend import Capability

    from dshell_slurm.backend import SlurmBackend

    assert Capability.DRAIN in SlurmBackend.capabilities
    assert Capability.MAINTENANCE not in SlurmBackend.capabilities
    assert Capability.ATTRIBUTES not in SlurmBackend.capabilities
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    from dshell.backend import Mount
    from dshell.namespace import MountTable

    caps = {"caps": "tasks,agents,drain,run,kill"}  # `mount -o` would split it at the commas
    MountTable().update(
        lambda ms: [*ms, Mount(target="/hpc", type="fake", source="fake", options=caps)]
    )
    for line, what in [
        ("maint ls --on /hpc", "maintenance windows"),
        ("maint schedule n1 --on /hpc --start now+1h --duration 1h", "maintenance windows"),
        ("maint cancel /hpc/agents/n1", "maintenance windows"),
        ("nodes attr n1 --on /hpc rack=r1", "changing node attributes"),
    ]:
        res = cli(line)
        assert res.status == ExitCode.UNSUPPORTED and what in res.stderr, (line, res.stderr)


def test_the_allocator_offers_no_agent_in_maintenance() -> None:
    from dshell.model import Resources

    from dshell_local import constraints as c
    from dshell_local.allocator import Allocator
    from dshell_local.config import AgentSpec
    from dshell_local.framework import MetaFramework

    specs = [
        AgentSpec(
            id=a, hostname=f"h{a}", cpus=1, mem=512, disk=10, ports=[], attributes={"rack": r}
        )
        for a, r in (("a0", "r1"), ("a1", "r1"), ("a2", "r2"))
    ]
    alloc = Allocator(specs, {})
    fw = MetaFramework(c.sites_of(alloc.agents.values()))
    fw.unavailable = alloc.unavailable
    alloc.unavailable["a0"] = "DRAINING (maintenance: no new placements)"
    assert [o.agent_id for o in alloc.offers_for("*")] == ["a1", "a2"]
    assert "a0: DRAINING" in alloc.explain(Resources(cpus=4))
    plan = c.plan_placement(alloc, [], ["rack:IS:r1"], Resources(cpus=0.5), 3)
    assert plan.agents[:2] == ["a1", "a1"] and plan.agents[2] is None
    assert "a0: DRAINING" in (plan.reasons[2] or "")
    # an attribute change: new placements (and the groups' counts) see it
    fw.placements.place("t1", "g", fw._sites["a2"])
    alloc.set_attributes("a2", {"rack": "r1"})
    fw.set_sites(c.sites_of(alloc.agents.values()))
    assert fw.placements.tally("g").counts("rack") == {"r1": 1}
    plan = c.plan_placement(alloc, [], ["rack:IS:r1"], Resources(cpus=1), 2)
    assert plan.agents == ["a1", "a2"]
