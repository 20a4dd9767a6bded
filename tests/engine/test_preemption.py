"""Preemption on the embedded engine with three logical agents (a0 a1 a2: one cpu, 256 MiB
each): a preferred launch takes the place of preemptible tasks of a lower priority (killed
with their grace, KILLED with REASON_PREEMPTED naming it), never the reverse nor at equal
priority; constraints choose the agent; a preempted service instance is replaced (it waits
for room) without counting as a crash; bad input is refused; other backends say UNSUPPORTED.
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

from .conftest import wait_until
from .helpers import ok, task

AGENTS = "".join(
    f'[[agents]]\nid = "a{i}"\nhostname = "h{i}"\ncpus = 1\nmem = 256\ndisk = 100\n'
    f"ports = [[{36000 + 20 * i}, {36019 + 20 * i}]]\n"
    for i in range(3)
)
PREEMPTED = "REASON_PREEMPTED"


@pytest.fixture
def three(engine_dirs: Path, engine_config: Callable[[str], Path]) -> None:
    engine_config("[engine]\nkill_grace = 20\n" + AGENTS)
    control.start()


def run(cli: CliRunner, args: str, script: str = "sleep 300") -> str:
    return ok(cli, ["run", "-d", *args.split(), "--mem", "64", "--shell", script]).strip()


def state(cli: CliRunner, ident: str, want: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (t := task(cli, ident))["state"] == want and t, what=f"{ident} {want}"
    )


def waiting(cli: CliRunner, ident: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (
            (t := task(cli, ident))["state"] == "STAGING"
            and "waiting for resources" in (t.get("message") or "")
            and t
        ),
        what=f"{ident} waiting for resources",
    )


def fill(cli: CliRunner, prios: list[int], tier: str = "preemptible") -> list[str]:
    """One task per agent (a whole cpu), in agent order; each checked to run where meant."""
    ids = [run(cli, f"--cpus 1 --tier {tier} --priority {p}") for p in prios]
    for i, ident in enumerate(ids):
        assert state(cli, ident, "RUNNING")["agent_id"] == f"a{i}"
    return ids


def preempted_by(cli: CliRunner, victim: str, preemptor: str) -> dict[str, Any]:
    t = state(cli, victim, "KILLED")
    assert t["reason"] == PREEMPTED and f"preempted by {preemptor}" in t["message"], t
    assert any(h.get("reason") == PREEMPTED for h in t["history"]), t["history"]
    return t


@pytest.mark.engine
def test_preferred_takes_the_place_of_the_lowest_priority(three: None, cli: CliRunner) -> None:
    low = fill(cli, [0, -3, 0])
    vip = run(cli, "--cpus 1 --tier preferred --priority 1")
    preempted_by(cli, low[1], vip)  # the lowest priority, on a1
    assert state(cli, vip, "RUNNING")["agent_id"] == "a1"
    for ident in (low[0], low[2]):
        assert task(cli, ident)["state"] == "RUNNING"
    shown = task(cli, vip)
    assert (shown["tier"], shown["priority"]) == ("preferred", 1)
    assert task(cli, low[0])["tier"] == "preemptible"  # the default of a plain task
    killed = ok(cli, "ps --state killed -o json")
    assert [t["id"] for t in json.loads(killed)] == [low[1]]
    wide = {r.split("\t")[1]: r for r in ok(cli, "ps -o wide").splitlines()}
    assert "preferred\t1" in wide[vip] and "preemptible\t0" in wide[low[0]], wide


@pytest.mark.engine
def test_never_the_reverse_nor_at_equal_priority(three: None, cli: CliRunner) -> None:
    fill(cli, [0, 0, 0])
    equal = run(cli, "--cpus 1 --tier preferred --priority 0")
    waiting(cli, equal)
    cheap = run(cli, "--cpus 1 --tier preemptible --priority 9")
    waiting(cli, cheap)
    ok(cli, "kill " + equal)
    ok(cli, "kill " + cheap)
    assert len(json.loads(ok(cli, "ps -o json"))) == 3  # all three still run


@pytest.mark.engine
def test_a_preferred_task_is_never_preempted(three: None, cli: CliRunner) -> None:
    fill(cli, [-5, -5, -5], tier="preferred")
    vip = run(cli, "--cpus 1 --tier preferred --priority 100")
    waiting(cli, vip)
    assert not json.loads(ok(cli, "ps --state killed -o json"))


@pytest.mark.engine
def test_victims_get_their_grace(three: None, cli: CliRunner, tmp_path: Path) -> None:
    marker = tmp_path / "bye"
    ready = tmp_path / "ready"
    trap = f"trap 'echo bye > {marker}; exit 0' TERM; touch {ready}; while :; do sleep 0.1; done"
    victim = run(cli, "--cpus 1 --priority -1", trap)
    assert state(cli, victim, "RUNNING")["agent_id"] == "a0"
    wait_until(ready.exists, what="the victim's trap set")
    fill_rest = [run(cli, "--cpus 1 --priority 5") for _ in range(2)]
    for ident in fill_rest:
        state(cli, ident, "RUNNING")
    vip = run(cli, "--cpus 1 --tier preferred --priority 1")
    t = preempted_by(cli, victim, vip)
    assert "exited with code 0" in t["message"]  # it ended on its own after SIGTERM
    assert marker.read_text().strip() == "bye"
    assert state(cli, vip, "RUNNING")["agent_id"] == "a0"


@pytest.mark.engine
def test_what_the_victims_free_is_held_for_the_preemptor(
    three: None, cli: CliRunner, tmp_path: Path
) -> None:
    first = run(cli, "--cpus 1")
    ready = tmp_path / "ready"
    quick = run(cli, "--cpus 0.5 --priority -1")
    # the second victim lingers after SIGTERM: the first one's half must wait for the preemptor
    slow = run(
        cli,
        "--cpus 0.5 --priority -1",
        f"trap 'sleep 1; exit 0' TERM; touch {ready}; while :; do sleep 0.1; done",
    )
    last = run(cli, "--cpus 1")
    for ident, agent in ((first, "a0"), (quick, "a1"), (slow, "a1"), (last, "a2")):
        assert state(cli, ident, "RUNNING")["agent_id"] == agent
    wait_until(ready.exists, what="the slow victim's trap set")
    other = run(cli, "--cpus 0.5")  # waits, and was queued before the preemptor
    waiting(cli, other)
    vip = run(cli, "--cpus 1 --tier preferred --priority 1")
    preempted_by(cli, quick, vip)
    preempted_by(cli, slow, vip)
    assert state(cli, vip, "RUNNING")["agent_id"] == "a1"
    assert task(cli, other)["state"] == "STAGING"
    assert [e["state"] for e in task(cli, other)["history"]] == ["STAGING"]


@pytest.mark.engine
def test_a_restart_during_a_preemption(three: None, cli: CliRunner, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    slow = f"trap 'sleep 2; exit 0' TERM; touch {ready}; while :; do sleep 0.1; done"
    victim = run(cli, "--cpus 1 --priority -1", slow)
    rest = [run(cli, "--cpus 1 --tier preferred") for _ in range(2)]
    for ident in (victim, *rest):
        state(cli, ident, "RUNNING")
    wait_until(ready.exists, what="the victim's trap set")
    vip = run(cli, "--cpus 1 --tier preferred --priority 7")
    state(cli, victim, "KILLING")
    assert control.stop()  # the preemption in flight is forgotten; the kill is not
    control.start()
    preempted_by(cli, victim, vip)
    shown = state(cli, vip, "RUNNING")
    assert (shown["agent_id"], shown["tier"], shown["priority"]) == ("a0", "preferred", 7)


@pytest.mark.engine
def test_constraints_choose_the_agent(three: None, cli: CliRunner) -> None:
    low = fill(cli, [-5, 0, 0])
    vip = run(cli, "--cpus 1 --tier preferred --priority 1 -C hostname:IS:h2")
    preempted_by(cli, low[2], vip)
    assert state(cli, vip, "RUNNING")["agent_id"] == "a2"
    assert task(cli, low[0])["state"] == "RUNNING"  # the cheapest, but on an agent it may not use


@pytest.mark.engine
def test_a_preempted_service_instance_is_replaced_and_waits(
    three: None, cli: CliRunner, tmp_path: Path
) -> None:
    spec = tmp_path / "low.toml"
    spec.write_text(
        '[service]\nname = "low"\ncommand = ["sleep", "300"]\ninstances = 3\n'
        'tier = "preemptible"\npriority = -1\nkill_grace_period = 1\n'
        "resources = { cpus = 1, mem = 64 }\n"
    )
    ok(cli, f"svc deploy -f {spec} --timeout 60")
    before = {t["id"]: t for t in json.loads(ok(cli, "ps -o json"))}
    assert len(before) == 3 and all(t["tier"] == "preemptible" for t in before.values())
    vip = run(cli, "--cpus 1 --tier preferred")
    agent = state(cli, vip, "RUNNING")["agent_id"]
    victim = next(i for i, t in before.items() if t["agent_id"] == agent)
    preempted_by(cli, victim, vip)

    def replacement() -> dict[str, Any] | None:
        rows = json.loads(ok(cli, "ps -o json"))
        fresh = [t for t in rows if t.get("service") == "low" and t["id"] not in before]
        return fresh[0] if fresh else None

    new = wait_until(replacement, what="a replacement instance")
    assert isinstance(new, dict)
    waiting(cli, new["id"])
    svc = json.loads(ok(cli, "svc show low -o json"))
    assert not svc.get("crashes"), svc  # a preemption is not a crash
    ok(cli, "kill " + vip)
    assert state(cli, new["id"], "RUNNING")["agent_id"] == agent


@pytest.mark.engine
def test_a_preempted_batch_run_is_a_failed_attempt(three: None, cli: CliRunner) -> None:
    fill(cli, [0, 0], tier="preferred")  # a0 and a1: never preempted
    ok(cli, "job create --name crunch --cpus 1 --mem 64 --grace 1 -- sleep 300")
    ok(cli, "job run crunch")
    run_task = wait_until(
        lambda: next(
            (t for t in json.loads(ok(cli, "ps -o json")) if t["state"] == "RUNNING"
             and t["agent_id"] == "a2"),
            None,
        ),
        what="the job's run on a2",
    )  # fmt: skip
    assert isinstance(run_task, dict) and run_task["tier"] == "preemptible"
    vip = run(cli, "--cpus 1 --tier preferred --priority 1")
    preempted_by(cli, run_task["id"], vip)
    runs = wait_until(
        lambda: (h := json.loads(ok(cli, "job history crunch -o json"))) and h,
        what="the run in the history",
    )
    assert isinstance(runs, list)
    (done,) = runs
    assert done["state"] == "FAILED" and f"preempted by {vip}" in done["message"], done


@pytest.mark.engine
def test_service_tiers_from_flags_and_the_default(three: None, cli: CliRunner) -> None:
    ok(cli, "svc deploy --name web --mem 32 --timeout 60 -- sleep 300")
    ok(cli, "svc deploy --name low --tier preemptible --priority -2 --timeout 60 -- sleep 300")
    rows = {t["service"]: t for t in json.loads(ok(cli, "ps -o json"))}
    assert (rows["web"]["tier"], rows["web"]["priority"]) == ("preferred", 0)
    assert (rows["low"]["tier"], rows["low"]["priority"]) == ("preemptible", -2)
    res = cli("svc deploy --name x --tier revocable -- true")
    assert res.status == ExitCode.USAGE and "--tier" in res.stderr, res.stderr


@pytest.mark.engine
def test_aurora_tiers_reach_the_engine(three: None, cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "x.aurora"
    path.write_text(
        "res = Resources(cpu = 0.05, ram = 32*MB, disk = 16*MB)\n"
        "task = Task(processes = [Process(name = 's', cmdline = 'sleep 300')], resources = res)\n"
        "jobs = [\n"
        "  Service(cluster = 'local', role = 'me', environment = 'prod', name = 'prod',\n"
        "          production = True, priority = 4, task = task),\n"
        "  Service(cluster = 'local', role = 'me', environment = 'devel', name = 'cheap',\n"
        "          tier = 'preemptible', priority = -1, task = task),\n"
        "]\n"
    )
    ok(cli, f"svc deploy -f {path} --timeout 60")
    rows = {t["service"]: t for t in json.loads(ok(cli, "ps -o json"))}
    assert (rows["prod"]["tier"], rows["prod"]["priority"]) == ("preferred", 4)
    assert (rows["cheap"]["tier"], rows["cheap"]["priority"]) == ("preemptible", -1)


@pytest.mark.engine
def test_bad_tier_and_priority_are_refused(three: None, cli: CliRunner, tmp_path: Path) -> None:
    for line in (
        "run -d --tier revocable -- true",
        "run -d --priority high -- true",
    ):
        res = cli(line)
        assert res.status == ExitCode.USAGE and "--" in res.stderr, (line, res.stderr)
    spec = tmp_path / "bad.toml"
    spec.write_text('[service]\nname = "bad"\ncommand = ["true"]\ntier = "revocable"\n')
    res = cli(f"svc deploy -f {spec}")
    assert res.status == ExitCode.USAGE and "tier: 'revocable'" in res.stderr, res.stderr
    assert not json.loads(ok(cli, "svc ls -o json"))
    assert not json.loads(ok(cli, "ps -a -o json"))  # nothing half-launched


def test_a_backend_without_preemption_answers_unsupported(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dshell.backend import Capability, Mount
    from dshell.namespace import MountTable

    from dshell_slurm.backend import SlurmBackend

    assert Capability.PREEMPTION not in SlurmBackend.capabilities
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    caps = {"caps": "tasks,agents,run,kill"}
    MountTable().update(
        lambda ms: [*ms, Mount(target="/hpc", type="fake", source="fake", options=caps)]
    )
    for line in (
        "run -d --on /hpc --tier preferred -- true",
        "run -d --on /hpc --priority 3 -- true",
    ):
        res = cli(line)
        assert res.status == ExitCode.UNSUPPORTED, (line, res.stderr)
        assert "preemption tiers and priorities" in res.stderr, res.stderr
    res = cli("run -d --on /hpc -- true")  # without them it runs
    assert res.status == 0, res.stderr
