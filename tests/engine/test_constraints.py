"""Placement constraints: the parser, each operator (pure), the framework's placement, and the
real engine with six agents in three racks (UNIQUE waits and resumes, GROUP_BY spreads, MAX_PER,
LIKE/UNLIKE/IS, impossible constraints refused at submit, constraints kept across a restart)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dshell import constraints as core
from dshell.errors import UsageError
from dshell.model import Constraint, Resources, RunSpec, Task, TaskState
from dshell.specs.issues import Issues
from dshell.specs.validate import check_constraint
from dshell.testing.fixtures import CliRunner

from dshell_local import constraints as c
from dshell_local import control, submit
from dshell_local.allocator import Allocator
from dshell_local.client import EngineClient
from dshell_local.config import AgentSpec
from dshell_local.framework import MetaFramework
from dshell_local.ids import IdGenerator
from dshell_local.tasks import TaskRecord, TaskRuntime, decode_record, encode_record

from .conftest import wait_until
from .helpers import spec

RACK = {f"a{i}": f"r{(i - 1) // 2 + 1}" for i in range(1, 7)}  # a1 a2: r1, a3 a4: r2, a5 a6: r3
HOST = {a: f"node-{a}" for a in RACK}


def site(ident: str, **attributes: str) -> c.Site:
    return c.Site(ident, f"node-{ident}", attributes)


SITES = [site(a, rack=r) for a, r in RACK.items()]
BY_ID = {s.id: s for s in SITES}


def placed(*ids: str) -> list[c.Site]:
    return [BY_ID[i] for i in ids]


def refused(rule: str, candidate: c.Site, *on: str, spread: c.Spread | None = None) -> str | None:
    return c.refusal([rule], candidate, placed(*on), spread)


# ---- parsing and validation ----------------------------------------------------------------


def test_the_string_array_and_mapping_forms_parse_alike() -> None:
    want = Constraint("rack", "GROUP_BY", "3")
    assert c.parse_constraint("rack:GROUP_BY:3") == want
    assert c.parse_constraint(["rack", "GROUP_BY", "3"]) == want
    assert c.parse_constraint(["rack", "GROUP_BY", 3]) == want
    assert c.parse_constraint({"field": "rack", "operator": "GROUP_BY", "value": "3"}) == want
    assert c.parse_constraint(Constraint("rack", "group_by", "03")) == want
    assert c.parse_constraint("@hostname:unique") == Constraint("hostname", "UNIQUE")
    assert c.parse_constraint("rack:CLUSTER:") == Constraint("rack", "CLUSTER")
    assert c.parse_constraint("rack:LIKE:r:[12]") == Constraint("rack", "LIKE", "r:[12]")
    assert str(c.to_rule("hostname:UNIQUE")) == "hostname:UNIQUE"
    assert str(c.to_rule(["rack", "MAX_PER", "2"])) == "rack:MAX_PER:2"


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("rack", "expected FIELD:OPERATOR"),
        (["rack"], "expected FIELD:OPERATOR"),
        (["rack", "IS", "a", "b"], "expected FIELD:OPERATOR"),
        (42, "expected FIELD:OPERATOR"),
        (":UNIQUE", "field .* is empty"),
        ("rack:NEAR", "unknown operator 'NEAR'; expected one of UNIQUE, CLUSTER"),
        ("rack:MAX_PER", "MAX_PER needs a value"),
        ("rack:MAX_PER:0", "MAX_PER needs a positive integer, got '0'"),
        ("rack:MAX_PER:two", "MAX_PER needs a positive integer"),
        ("rack:GROUP_BY:-1", "GROUP_BY needs a positive integer"),
        ("rack:LIKE:r[12", "LIKE needs a regular expression, got 'r\\[12': unterminated"),
        ("rack:UNLIKE", "UNLIKE needs a value"),
        ("rack:IS", "IS needs a value"),
        ("hostname:UNIQUE:x", "UNIQUE takes no value"),
        (["rack", "IS", ["r1"]], "the value must be a string"),
        ("rack\x00:UNIQUE", "the field contains a NUL byte"),
        ("rack:IS:r\x001", "the value contains a NUL byte"),
    ],
)
def test_bad_constraints_are_usage_errors_naming_them(item: object, problem: str) -> None:
    with pytest.raises(UsageError, match=f"bad constraint .*{problem}") as err:
        c.parse_constraint(item)
    if isinstance(item, str):
        assert repr(item) in err.value.message


@pytest.mark.parametrize(
    ("written", "where", "problem"),
    [
        (Constraint("", "UNIQUE"), "field", "the field (hostname or an agent attribute) is empty"),
        (Constraint("rack", "NEAR"), "operator", "unknown operator 'NEAR'; expected one of"),
        (Constraint("hostname", "UNIQUE", "x"), "value", "UNIQUE takes no value"),
        (Constraint("rack", "LIKE"), "value", "LIKE needs a value"),
        (Constraint("rack", "MAX_PER", "two"), "value", "MAX_PER needs a positive integer, got"),
        (Constraint("rack", "GROUP_BY", "0"), "value", "GROUP_BY needs a positive integer, got"),
        (Constraint("rack", "UNLIKE", "r[1"), "value", "UNLIKE needs a regular expression, got"),
    ],
)
def test_spec_files_and_the_engine_share_one_rule(
    written: Constraint, where: str, problem: str
) -> None:
    """A spec file's constraint is checked by the rule the parser uses, the error pointed at
    the offending part (``dshell.specs.validate.check_constraint``)."""
    issues = Issues("app.json")
    issues.note(written, ("constraints", 0))
    check_constraint(written, issues)
    assert [(e.path, e.message[: len(problem)]) for e in issues.errors] == [
        (f"$.constraints[0].{where}", problem)
    ]
    assert core.constraint_problem(written.field, written.operator, written.value) == (
        where,
        issues.errors[0].message,
    )
    with pytest.raises(UsageError, match=f"bad constraint .*: {re.escape(problem)}"):
        c.parse_constraint(written)


def test_spec_files_are_checked_as_written_the_parser_normalizes() -> None:
    # the parser forgives case, spacing, @hostname and an empty value; a spec file does not
    assert core.constraint_problem("hostname", "unique", None) == (
        "operator",
        "unknown operator 'unique'; expected one of " + ", ".join(core.OPERATORS),
    )
    assert core.constraint_problem("hostname", "UNIQUE", "") == ("value", "UNIQUE takes no value")
    assert core.constraint_problem("rack", "IS", "") == ("value", "IS needs a value")
    assert core.constraint_problem(" ", "UNIQUE", None) is not None
    assert core.to_rule(" @hostname : unique :") == core.Rule("hostname", "UNIQUE")
    assert c.Rule is core.Rule and c.validate_constraint is core.validate_constraint


# ---- each operator against one candidate agent -----------------------------------------------


def test_unique() -> None:
    assert refused("hostname:UNIQUE", BY_ID["a1"]) is None
    assert refused("hostname:UNIQUE", BY_ID["a2"], "a1") is None
    assert refused("hostname:UNIQUE", BY_ID["a1"], "a1") == (
        "hostname:UNIQUE — hostname node-a1 already holds an instance"
    )
    assert refused("rack:UNIQUE", BY_ID["a2"], "a1") == (
        "rack:UNIQUE — rack r1 already holds an instance"
    )
    assert refused("rack:UNIQUE", BY_ID["a3"], "a1") is None
    assert refused("rack:UNIQUE", site("x")) == "rack:UNIQUE — x has no rack"


def test_cluster_with_and_without_a_value() -> None:
    assert refused("rack:CLUSTER:r2", BY_ID["a3"]) is None
    assert refused("rack:CLUSTER:r2", BY_ID["a1"]) == "rack:CLUSTER:r2 — rack is r1, not r2"
    # without a value: anywhere with the attribute first, then where the first one went
    assert refused("rack:CLUSTER", BY_ID["a5"]) is None
    assert refused("rack:CLUSTER", BY_ID["a6"], "a5") is None
    assert refused("rack:CLUSTER", BY_ID["a1"], "a5") == "rack:CLUSTER — the group runs on rack r3"
    assert refused("hostname:CLUSTER", BY_ID["a6"], "a5") is not None
    assert refused("rack:CLUSTER", site("x")) == "rack:CLUSTER — x has no rack"


def test_group_by_places_on_the_value_with_fewest() -> None:
    spread = c.spread_values([c.to_rule("rack:GROUP_BY")], SITES)
    assert spread == {"rack": frozenset({"r1", "r2", "r3"})}
    assert refused("rack:GROUP_BY", BY_ID["a1"], spread=spread) is None
    # r1 has one, r2 and r3 none: only r2 and r3 admit the next
    assert refused("rack:GROUP_BY", BY_ID["a2"], "a1", spread=spread) == (
        "rack:GROUP_BY — rack r1 holds 1; r2, r3 hold 0"
    )
    assert refused("rack:GROUP_BY", BY_ID["a3"], "a1", spread=spread) is None
    assert refused("rack:GROUP_BY", BY_ID["a6"], "a1", "a3", spread=spread) is None
    assert refused("rack:GROUP_BY", BY_ID["a1"], "a1", "a3", "a5", spread=spread) is None
    assert refused("rack:GROUP_BY", site("x"), spread=spread) == "rack:GROUP_BY — x has no rack"
    # without the agents' values (Marathon's view): only the values in use are balanced
    assert refused("rack:GROUP_BY", BY_ID["a2"], "a1") is None
    assert refused("rack:GROUP_BY", BY_ID["a2"], "a1", "a3") is None
    assert refused("rack:GROUP_BY", BY_ID["a2"], "a1", "a2", "a3") is not None


def test_group_by_balances_a_whole_plan_evenly() -> None:
    free = [(s, Resources(cpus=4, mem=1024)) for s in SITES]
    plan = c.plan_placement(free, [], ["rack:GROUP_BY:3"], Resources(cpus=1), 9)
    assert Counter(RACK[a] for a in plan.agents if a) == {"r1": 3, "r2": 3, "r3": 3}
    # already two on r1: the next two go to r2 and r3
    plan = c.plan_placement(free, ["a1", "a2"], ["rack:GROUP_BY"], Resources(cpus=1), 2)
    assert sorted(RACK[a] for a in plan.agents if a) == ["r2", "r3"]


def test_max_per() -> None:
    assert refused("rack:MAX_PER:2", BY_ID["a2"], "a1") is None
    assert refused("rack:MAX_PER:2", BY_ID["a2"], "a1", "a2") == (
        "rack:MAX_PER:2 — rack r1 already holds 2 instances"
    )
    assert refused("rack:MAX_PER:2", BY_ID["a3"], "a1", "a2") is None
    assert refused("hostname:MAX_PER:1", BY_ID["a1"], "a1") is not None
    assert refused("rack:MAX_PER:1", site("x")) == "rack:MAX_PER:1 — x has no rack"


def test_a_catastrophic_like_pattern_refuses_the_agent_instead_of_hanging() -> None:
    # (a|aa)+b against 40 a's backtracks ~fib(40) times even in the regex module: the match is
    # cut at its time limit, the agent refused with the reason, for LIKE and UNLIKE alike.
    slow = site("x", rack="a" * 40)
    for op in ("LIKE", "UNLIKE"):
        why = refused(f"rack:{op}:(a|aa)+b", slow)
        assert why is not None
        assert why.endswith(f"rack:{op}:(a|aa)+b took over 50 ms to match '{'a' * 40}'")
    assert refused("rack:LIKE:(a|aa)+", slow) is None  # matching at once is fast


def test_like_unlike_is_and_agents_lacking_the_attribute() -> None:
    bare = site("x")
    assert refused("rack:LIKE:r[12]", BY_ID["a3"]) is None
    assert (
        refused("rack:LIKE:r[12]", BY_ID["a5"]) == "rack:LIKE:r[12] — rack r3 does not match r[12]"
    )
    assert refused("rack:LIKE:r", BY_ID["a1"]) is not None  # a full match, not a search
    assert refused("hostname:LIKE:node-a[56]", BY_ID["a6"]) is None
    assert refused("rack:LIKE:.*", bare) == "rack:LIKE:.* — x has no rack"
    assert refused("rack:UNLIKE:r1", BY_ID["a1"]) == "rack:UNLIKE:r1 — rack r1 matches r1"
    assert refused("rack:UNLIKE:r1", BY_ID["a3"]) is None
    assert refused("rack:UNLIKE:r1", bare) is None  # lacking the attribute matches UNLIKE
    assert refused("rack:IS:r2", BY_ID["a4"]) is None
    assert refused("rack:IS:r2", BY_ID["a1"]) == "rack:IS:r2 — rack is r1, not r2"
    assert refused("rack:IS:r2", bare) == "rack:IS:r2 — x has no rack"


def test_several_constraints_name_the_first_that_refuses() -> None:
    rules = ["rack:LIKE:r[12]", "hostname:UNIQUE"]
    assert c.refusal(rules, BY_ID["a5"], []) == "rack:LIKE:r[12] — rack r3 does not match r[12]"
    assert c.refusal(rules, BY_ID["a3"], placed("a3")) is not None
    assert c.refusal(rules, BY_ID["a4"], placed("a3")) is None


# ---- feasibility, waiting messages and plans ---------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (
            ["rack:CLUSTER:r9"],
            "constraint rack:CLUSTER:r9 can never be met: no agent has rack 'r9'",
        ),
        (
            ["rack:IS:r9"],
            "rack:IS:r9 can never be met: no agent has rack 'r9' \\(rack: r1, r2, r3\\)",
        ),
        (["rack:LIKE:r[89]"], "rack:LIKE:r\\[89\\] can never be met: no agent's rack matches"),
        (["rack:UNLIKE:r.*"], "rack:UNLIKE:r.\\* can never be met: every agent's rack matches"),
        (["zone:UNIQUE"], "zone:UNIQUE can never be met: no agent has the attribute 'zone'"),
        (["rack:GROUP_BY:4"], "rack:GROUP_BY:4 can never be met: .* have 3 value\\(s\\) of rack"),
        (
            ["rack:IS:r1", "hostname:IS:node-a3"],
            "hostname:IS:node-a3 can never be met: .* among the agents rack:IS:r1 allows",
        ),
    ],
)
def test_impossible_constraints_are_named(rules: list[str], problem: str) -> None:
    rs = [c.to_rule(r) for r in rules]
    assert c.never_reason(rs, SITES, None) is not None
    with pytest.raises(UsageError, match=problem):
        c.check_feasible(rs, SITES, None)


def test_feasible_constraints_and_agents_too_small() -> None:
    for rules in (["rack:UNLIKE:zzz"], ["rack:GROUP_BY:3"], ["hostname:UNIQUE", "rack:LIKE:r1"]):
        c.check_feasible(rules, SITES, None)
    sized = [c.Site(s.id, s.hostname, s.attributes, Resources(cpus=1, mem=100)) for s in SITES]
    sized[0] = c.Site("a1", "node-a1", {"rack": "r1"}, Resources(cpus=8, mem=100))
    c.check_feasible(["rack:IS:r1"], sized, Resources(cpus=4))
    with pytest.raises(
        UsageError, match="no agent the constraints allow \\(a3, a4\\) can ever hold"
    ):
        c.check_feasible(["rack:IS:r2"], sized, Resources(cpus=4))


def test_plan_says_where_and_why_not() -> None:
    free = [(s, Resources(cpus=1, mem=1024)) for s in SITES]
    plan = c.plan_placement(free, [], ["hostname:UNIQUE"], Resources(cpus=0.5), 8)
    assert plan.agents == ["a1", "a2", "a3", "a4", "a5", "a6", None, None]
    assert plan.reasons[:6] == [None] * 6
    assert (
        plan.reasons[6]
        == "waiting for placement: hostname:UNIQUE — all 6 agents already hold an instance"
    )
    plan = c.plan_placement(free, [], ["rack:MAX_PER:1"], Resources(cpus=0.5), 4)
    assert plan.agents == ["a1", "a3", "a5", None]
    assert plan.reasons[3] == (
        "waiting for placement: rack:MAX_PER:1 — every rack (r1, r2, r3) already holds 1 instance"
    )
    plan = c.plan_placement(free, [], ["rack:IS:r2"], Resources(cpus=0.5), 5)
    assert plan.agents == ["a3", "a3", "a4", "a4", None]
    assert plan.reasons[4] == (
        "waiting for resources on the agents the constraints allow "
        "(a3: cpus 0.5 > free 0; a4: cpus 0.5 > free 0)"
    )
    plan = c.plan_placement(free, [], ["rack:CLUSTER:r7"], Resources(cpus=0.5), 2)
    assert plan.agents == [None, None] and "can never be met" in (plan.reasons[0] or "")


def test_plan_takes_the_allocator_and_agent_ids() -> None:
    alloc = Allocator(agent_specs(), {})
    assert alloc.allocate("t1", "a1", "*", Resources(cpus=2)) is not None  # a1 is full
    plan = c.plan_placement(alloc, ["a3"], ["hostname:UNIQUE"], Resources(cpus=1), 3)
    assert plan.agents == ["a2", "a4", "a5"]


# ---- the registry and the framework ------------------------------------------------------------


def agent_specs() -> list[AgentSpec]:
    return [
        AgentSpec(
            id=a, hostname=HOST[a], cpus=2, mem=1024, disk=100, ports=[], attributes={"rack": r}
        )
        for a, r in RACK.items()
    ]


def test_placements_count_active_tasks_per_group() -> None:
    reg = c.Placements()
    reg.place("t1", "g", BY_ID["a1"])
    reg.place("t2", "g", BY_ID["a2"])
    reg.place("u1", "h", BY_ID["a1"])
    assert reg.agents("g") == ["a1", "a2"] and reg.tally("g").counts("rack") == {"r1": 2}
    reg.forget("t1")
    reg.place("t3", "g", BY_ID["a3"])
    assert reg.agents("g") == ["a2", "a3"] and reg.tally("g").counts("rack")["r1"] == 1
    reg.forget("t2")
    reg.forget("t3")
    reg.forget("nope")
    assert reg.agents("g") == [] and reg.agents("h") == ["a1"]


def framework() -> tuple[Allocator, MetaFramework]:
    alloc = Allocator(agent_specs(), {})
    return alloc, MetaFramework(c.sites_of(alloc.agents.values()))


def queue(fw: MetaFramework, prefix: str, n: int, need: c.Need | None, cpus: float = 0.5) -> None:
    for i in range(n):
        fw.add(f"{prefix}{i}", "*", Resources(cpus=cpus, mem=10), need)


def test_tasks_placed_earlier_in_one_round_count() -> None:
    alloc, fw = framework()
    queue(fw, "u", 8, c.Need("run:u", c.to_rules(["hostname:UNIQUE"])))
    queue(fw, "p", 3, None)
    grants = alloc.cycle([fw])
    by_task = {g.task_id: g.agent_id for g in grants}
    assert sorted(by_task[f"u{i}"] for i in range(6)) == sorted(RACK)
    assert "u6" not in by_task and "u7" not in by_task
    assert {"p0", "p1", "p2"} <= set(by_task)  # the plain tasks still first fit
    messages = fw.placement_messages(lambda a: alloc.agents[a].free())
    assert messages == {
        "u6": "waiting for placement: hostname:UNIQUE — all 6 agents already hold an instance",
        "u7": "waiting for placement: hostname:UNIQUE — all 6 agents already hold an instance",
    }
    # an instance ends: the next one takes its agent
    fw.remove("u2")
    alloc.release("u2")
    again = alloc.cycle([fw])
    assert [(g.task_id, g.agent_id) for g in again] == [("u6", by_task["u2"])]


def test_groups_are_services_or_submissions() -> None:
    alloc, fw = framework()
    unique = c.to_rules(["rack:UNIQUE"])
    for name in ("web.1", "web.2", "web.3"):  # three submissions of one service
        task = Task(id=name, name="web", state=TaskState.STAGING, labels={c.SERVICE_LABEL: "web"})
        need = c.need_of(TaskRecord(task, runtime("run:ignored", unique)))
        assert need == c.Need("service:web", unique)
        fw.add(name, "*", Resources(cpus=0.5), need)
    queue(fw, "r", 2, c.Need("run:r0", unique))  # another group: not blocked by the service
    grants = alloc.cycle([fw])
    racks = Counter(RACK[g.agent_id] for g in grants if g.task_id.startswith("web"))
    assert racks == {"r1": 1, "r2": 1, "r3": 1}
    assert len([g for g in grants if g.task_id.startswith("r")]) == 2
    plain = Task(id="x.1", name="x", state=TaskState.STAGING)
    assert c.need_of(TaskRecord(plain, TaskRuntime())) is None


def test_submission_keeps_group_and_constraints_in_the_runtime_not_in_raw() -> None:
    alloc = Allocator(agent_specs(), {})
    rules = [Constraint("@hostname", "unique"), Constraint("rack", "MAX_PER", "02")]
    recs = submit.build(spec("true", instances=2, constraints=rules), IdGenerator(), alloc)
    first = recs[0].task.id
    for rec in recs:
        assert rec.task.raw is None
        assert rec.rt.placement_group == f"run:{first}"
        assert rec.rt.constraints == [
            Constraint("hostname", "UNIQUE"),
            Constraint("rack", "MAX_PER", "2"),
        ]
        again = decode_record(*encode_record(rec)[::2])  # the stored row: task JSON, runtime
        assert c.need_of(again) == c.Need(
            f"run:{first}", c.to_rules(["hostname:UNIQUE", "rack:MAX_PER:2"])
        )
    plain = submit.build(spec("true"), IdGenerator(), alloc)[0]
    assert c.need_of(plain) is None and encode_record(plain)[2] == b"{}"


def runtime(group: str, rules: tuple[c.Rule, ...]) -> TaskRuntime:
    """What ``submit.build`` keeps of a constrained task (not in ``Task.raw``)."""
    return TaskRuntime(placement_group=group, constraints=[r.constraint() for r in rules])


def test_a_refused_launch_is_forgotten_and_restore_rebuilds_the_registry() -> None:
    alloc, fw = framework()
    need = c.Need("run:t", c.to_rules(["hostname:UNIQUE"]))
    fw.add("t0", "*", Resources(cpus=0.5), need)
    assert fw.resource_offers(alloc.offers_for("*"), None)[0].task_id == "t0"
    assert fw.placements.agents("run:t") == ["a1"]
    fw.launch_refused("t0", "*", Resources(cpus=0.5))
    assert fw.placements.agents("run:t") == [] and fw.demand() == {"*": 1}
    # a restarted engine: a running instance on a3 and a waiting one
    fresh = MetaFramework(c.sites_of(alloc.agents.values()))
    running = Task(id="t1", name="t", state=TaskState.RUNNING, agent_id="a3")
    waiting = Task(id="t2", name="t", state=TaskState.STAGING)
    fresh.add("t2", "*", Resources(cpus=0.5))  # as recovery requeues it: without its need
    fresh.restore([TaskRecord(t, runtime("run:t", need.rules)) for t in (running, waiting)])
    assert fresh.placements.agents("run:t") == ["a3"]
    assert fresh.placement_messages(lambda a: alloc.agents[a].free()) == {}
    fresh.add("t2", "*", Resources(cpus=0.5))  # requeued again (executor reconnect): kept
    launches = fresh.resource_offers(alloc.offers_for("*"), None)
    assert [launch.task_id for launch in launches] == ["t2"]


# ---- the real engine: six agents in three racks --------------------------------------------


def engine_toml() -> str:
    parts = []
    for i, (a, r) in enumerate(RACK.items()):
        gpu = 'gpu = "yes", ' if a == "a1" else ""
        parts.append(
            f'[[agents]]\nid = "{a}"\nhostname = "{HOST[a]}"\ncpus = 2\nmem = 512\ndisk = 100\n'
            f"ports = [[{32000 + 10 * i}, {32009 + 10 * i}]]\n"
            f'attributes = {{ {gpu}rack = "{r}" }}\n'
        )
    return "".join(parts)


@pytest.fixture
def racks(engine_config: Callable[[str], Path], engine_dirs: Path) -> Iterator[EngineClient]:
    engine_config(engine_toml())
    control.start()
    with control.client() as client:
        yield client


def settle(client: EngineClient, tasks: list[Task], running: int, waiting: int) -> list[Task]:
    """Wait until ``running`` tasks run and ``waiting`` wait with a reason; all of them."""

    def check() -> list[Task] | None:
        now = [client.get_task(t.id) for t in tasks]
        up = sum(t.state is TaskState.RUNNING for t in now)
        held = sum(t.state is TaskState.STAGING and bool(t.message) for t in now)
        return now if (up, held) == (running, waiting) else None

    result = wait_until(check, what=f"{running} running and {waiting} waiting")
    assert isinstance(result, list)
    return result


def sleepers(n: int, *rules: str, name: str = "s") -> RunSpec:
    return spec("sleep", "300", name=name, instances=n, constraints=c.parse_constraints(rules))


def test_unique_waits_with_its_reason_then_launches_when_an_instance_ends(
    racks: EngineClient, cli: CliRunner
) -> None:
    tasks = racks.submit(sleepers(7, "hostname:UNIQUE"))
    now = settle(racks, tasks, running=6, waiting=1)
    up = [t for t in now if t.state is TaskState.RUNNING]
    held = next(t for t in now if t.state is TaskState.STAGING)
    assert sorted(t.hostname for t in up) == sorted(HOST.values())
    why = "waiting for placement: hostname:UNIQUE — all 6 agents already hold an instance"
    assert held.message == why and held.reason == "REASON_WAITING_FOR_RESOURCES"
    ps = cli(["ps", "/local", "-o", "wide"])
    assert ps.status == 0 and why in ps.stdout
    inspect = cli(["inspect", held.id])
    assert inspect.status == 0 and why in inspect.stdout
    victim = up[3]
    racks.kill(victim.id, grace=0.5)
    assert racks.wait(victim.id, 30).state is TaskState.KILLED
    wait_until(lambda: racks.get_task(held.id).state is TaskState.RUNNING, what="the waiting task")
    launched = racks.get_task(held.id)
    assert launched.hostname == victim.hostname and launched.agent_id == victim.agent_id
    changes = [(e.seq, e.task) for e in racks.events(since=0) if e.task is not None]
    ended = next(n for n, t in changes if t.id == victim.id and t.state.terminal)
    started = next(n for n, t in changes if t.id == held.id and t.state is TaskState.STARTING)
    assert ended < started


def test_group_by_spreads_and_max_per_limits(racks: EngineClient) -> None:
    spread = settle(racks, racks.submit(sleepers(6, "rack:GROUP_BY:3")), running=6, waiting=0)
    assert Counter(RACK[t.agent_id or ""] for t in spread) == {"r1": 2, "r2": 2, "r3": 2}
    capped = racks.submit(sleepers(4, "rack:MAX_PER:1", name="m"))
    now = settle(racks, capped, running=3, waiting=1)  # another group: GROUP_BY's do not count
    assert sorted(RACK[t.agent_id or ""] for t in now if t.agent_id) == ["r1", "r2", "r3"]
    held = next(t for t in now if t.state is TaskState.STAGING)
    assert held.message == (
        "waiting for placement: rack:MAX_PER:1 — every rack (r1, r2, r3) already holds 1 instance"
    )


def test_like_unlike_and_is(racks: EngineClient) -> None:
    def agents_of(*rules: str, n: int = 4) -> set[str]:
        tasks = racks.submit(spec("true", instances=n, constraints=c.parse_constraints(rules)))
        done = [racks.wait(t.id, 30) for t in tasks]
        assert all(t.state is TaskState.FINISHED for t in done)
        return {t.agent_id or "" for t in done}

    assert {RACK[a] for a in agents_of("rack:LIKE:r[12]")} <= {"r1", "r2"}
    assert "r1" not in {RACK[a] for a in agents_of("rack:UNLIKE:r1")}
    assert agents_of("rack:IS:r3", n=2) <= {"a5", "a6"}
    assert agents_of("gpu:LIKE:.*", n=2) == {"a1"}
    assert "a1" not in agents_of("gpu:UNLIKE:yes")  # agents lacking gpu match UNLIKE
    assert agents_of("hostname:CLUSTER:node-a4", n=2) == {"a4"}


def test_impossible_constraints_are_refused_at_submit(racks: EngineClient, cli: CliRunner) -> None:
    for rule, named in [
        ("rack:CLUSTER:r9", "rack:CLUSTER:r9 can never be met: no agent has rack 'r9'"),
        ("rack:LIKE:r", "rack:LIKE:r can never be met: no agent's rack matches 'r'"),
        ("zone:IS:z1", "zone:IS:z1 can never be met: no agent has the attribute 'zone'"),
        ("rack:GROUP_BY:4", "rack:GROUP_BY:4 can never be met"),
    ]:
        result = cli(["run", "-d", "-C", rule, "--", "true"])
        assert result.status == 2, result.stderr
        assert named in result.stderr
        with pytest.raises(UsageError, match=f"run: constraint {named}"):
            racks.submit(spec("true", constraints=[c.parse_constraint(rule)]))
    assert racks.list_tasks(all=True) == []


def test_a_bad_constraint_exits_2_before_anything_is_sent(cli: CliRunner) -> None:
    result = cli(["run", "-d", "-C", "rack:MAX_PER:many", "--", "true"])
    assert result.status == 2
    assert "--constraint: bad constraint 'rack:MAX_PER:many': MAX_PER needs a positive integer" in (
        result.stderr
    )
    assert cli(["run", "-d", "--constraint", "rack:SOMEWHERE", "--", "true"]).status == 2
    assert control.status() is None  # the engine was not even started


def test_a_waiting_task_keeps_its_constraints_across_a_restart(racks: EngineClient) -> None:
    tasks = racks.submit(sleepers(7, "hostname:UNIQUE"))
    now = settle(racks, tasks, running=6, waiting=1)
    held = next(t for t in now if t.state is TaskState.STAGING)
    assert control.stop()  # the tasks keep running
    status = control.start()
    assert status is not None and status.recovery.get("adopted") == 6
    with control.client() as client:
        now = settle(client, tasks, running=6, waiting=1)
        assert next(t for t in now if t.state is TaskState.STAGING).id == held.id
        victim = next(t for t in now if t.state is TaskState.RUNNING)
        client.kill(victim.id, grace=0.5)
        wait_until(lambda: client.get_task(held.id).state is TaskState.RUNNING)
        assert client.get_task(held.id).agent_id == victim.agent_id
