"""The victim chooser (:func:`dshell_local.preemption.choose`): pure, no engine."""

from __future__ import annotations

import pytest
from dshell.model import Resources

from dshell_local.preemption import (
    PREEMPTIBLE,
    PREFERRED,
    Placed,
    Room,
    Waiting,
    choose,
    default_tier,
    problem,
    room_after,
)

ONE = Resources(cpus=1, mem=256, disk=0, ports=10)


def agents(*ids: str) -> list[Room]:
    return [Room(i, ONE) for i in ids]


def task(
    tid: str,
    agent: str,
    cpus: float,
    prio: int = 0,
    tier: str = PREEMPTIBLE,
    order: int = 0,
    role: str = "r",
    dying: bool = False,
) -> Placed:
    return Placed(tid, agent, role, Resources(cpus, 16), tier, prio, order, dying)


def want(
    cpus: float, prio: int = 1, tier: str = PREFERRED, role: str = "r", **kw: object
) -> Waiting:
    return Waiting("p", role, Resources(cpus, 16), tier, prio, **kw)  # type: ignore[arg-type]


def test_lowest_priority_victims_on_the_best_agent() -> None:
    placed = [
        task("a", "a0", 0.5, prio=0),
        task("b", "a0", 0.5, prio=0),
        task("c", "a1", 0.5, prio=-5),
        task("d", "a1", 0.5, prio=-5),
    ]
    choice = choose(want(0.5, prio=3), agents("a0", "a1"), placed)
    assert choice is not None
    assert choice.agent == "a1"  # its costliest victim has the lower priority
    assert len(choice.victims) == 1


def test_fewest_victims_then_agent_order() -> None:
    placed = [
        task("a", "a0", 0.3),
        task("b", "a0", 0.3),
        task("c", "a0", 0.4),
        task("d", "a1", 1.0),
    ]
    choice = choose(want(0.6), agents("a0", "a1"), placed)
    assert choice is not None and choice.agent == "a1" and choice.victims == ("d",)
    placed = [task("a", "a0", 1.0), task("b", "a1", 1.0)]
    choice = choose(want(0.6), agents("a0", "a1"), placed)
    assert choice is not None and (choice.agent, choice.victims) == ("a0", ("a",))


def test_youngest_first_among_equals_and_unneeded_victims_spared() -> None:
    placed = [
        task("old", "a0", 0.5, order=1),
        task("new", "a0", 0.5, order=2),
    ]
    choice = choose(want(0.5), agents("a0"), placed)
    assert choice is not None and choice.victims == ("new",)
    # the small low-priority one is taken first, then the big one makes room on its own
    placed = [task("small", "a0", 0.2, prio=-1), task("big", "a0", 0.8, prio=0)]
    choice = choose(want(0.7), agents("a0"), placed)
    assert choice is not None and choice.victims == ("big",)


def test_never_the_reverse_nor_equal_nor_preferred_victims() -> None:
    full = [task("a", "a0", 1.0, prio=0)]
    assert choose(want(0.5, prio=0), agents("a0"), full) is None  # equal priority
    assert choose(want(0.5, prio=5, tier=PREEMPTIBLE), agents("a0"), full) is None
    prod = [task("a", "a0", 1.0, prio=-9, tier=PREFERRED)]
    assert choose(want(0.5, prio=5), agents("a0"), prod) is None


def test_no_preemption_when_it_fits_or_will_fit() -> None:
    assert choose(want(0.5), agents("a0"), [task("a", "a0", 0.5)]) is None  # fits now
    dying = [task("a", "a0", 1.0, dying=True)]
    assert choose(want(0.5), agents("a0"), dying) is None  # fits once it is gone
    assert choose(want(0.5), [], [task("a", "a0", 1.0)]) is None  # no agent admitted


def test_cannot_make_enough_room() -> None:
    placed = [task("a", "a0", 0.5, prio=0), task("b", "a0", 0.5, prio=7)]
    assert choose(want(0.8, prio=5), agents("a0"), placed) is None


def test_reservations_of_other_roles_are_not_freed_for_it() -> None:
    reserved = [Room("a0", ONE, reservations={"other": Resources(cpus=1, mem=256)})]
    placed = [task("o", "a0", 1.0, role="other")]
    assert choose(want(0.5, role="r"), reserved, placed) is None
    assert choose(want(0.5, role="other"), reserved, placed) is not None


def test_quota_headroom_counts_only_its_own_roles_victims() -> None:
    placed = [task("x", "a0", 0.5, role="x"), task("mine", "a1", 0.5, role="r")]
    rooms = agents("a0", "a1")
    # its role may take 0.5 more cpus: freeing another role's task does not raise that
    choice = choose(want(1.0, headroom={"cpus": 0.5}), rooms, placed)
    assert choice is not None and choice.victims == ("mine",)
    assert choose(want(1.0, headroom={"cpus": 0.4}), rooms, placed) is None


def test_room_after_counts_ports() -> None:
    room = Room("a0", Resources(cpus=1, mem=256, ports=2), ports_held=2)
    placed = [Placed("a", "a0", "r", Resources(0.1, 16, 0, 2), PREEMPTIBLE, 0)]
    assert room_after(room, placed, [], want(0)).ports == 0
    assert room_after(room, placed, placed, want(0)).ports == 2


def test_tier_rules_and_bad_values() -> None:
    assert default_tier(True) == PREFERRED and default_tier(False) == PREEMPTIBLE
    assert problem("preferred", 5) is None and problem(None, -3) is None
    assert "revocable" in (problem("revocable", 0) or "")
    assert "tier" in (problem("production", 0) or "")
    assert "priority" in (problem(None, 2**40) or "")


@pytest.mark.parametrize("seed", range(3))
def test_deterministic(seed: int) -> None:
    placed = [task(f"t{i}", f"a{i % 2}", 0.5, prio=i % 3 - 1, order=i) for i in range(4)]
    rooms = agents("a0", "a1")
    first = choose(want(0.5, prio=2), rooms, placed)
    again = choose(want(0.5, prio=2), rooms, list(reversed(placed)))
    assert first == again and first is not None


def test_what_the_allocator_holds_beyond_the_tasks_counts() -> None:
    """Disk of persistent volumes, resources held for another preemptor: allocated, though
    no task placed there holds them."""
    placed = [task("a", "a0", 0.5)]
    held = [Room("a0", ONE, allocated=Resources(cpus=1.0, mem=16))]
    assert choose(want(0.5), agents("a0"), placed) is None  # the tasks alone leave room
    choice = choose(want(0.5), held, placed)
    assert choice is not None and choice.victims == ("a",)
