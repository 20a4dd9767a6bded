"""The schedule maths of batch jobs (pure: no engine), the job graph and the job checks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from dshell.errors import UsageError
from dshell.jobgraph import as_dot, as_text, cycle_text, find_cycle
from dshell.specs.model import BatchJobSpec, ScheduleSpec

from dshell_local import schedules as s
from dshell_local.jobrecs import check_graph, spec_problem

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, tz: ZoneInfo | None = None) -> float:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz or UTC)
    return when.timestamp()


def local(stamp: float, tz: ZoneInfo = PARIS) -> str:
    return datetime.fromtimestamp(stamp, tz).isoformat()


def cron(expr: str, tz: str = "UTC", **kw: object) -> ScheduleSpec:
    return ScheduleSpec(cron=expr, timezone=tz, **kw)  # type: ignore[arg-type]


def iso(expr: str, tz: str = "UTC", **kw: object) -> ScheduleSpec:
    return ScheduleSpec(iso8601=expr, timezone=tz, **kw)  # type: ignore[arg-type]


# ---- cron ---------------------------------------------------------------------------------


def test_cron_in_a_time_zone() -> None:
    sched = cron("0 9 * * *", "America/New_York")
    after = at("2026-07-01T12:00:00")  # 08:00 in New York (EDT, UTC-4)
    assert s.next_due(sched, after, 0) == at("2026-07-01T13:00:00")
    winter = at("2026-12-01T12:00:00")  # EST, UTC-5
    assert s.next_due(sched, winter, 0) == at("2026-12-01T14:00:00")


def test_cron_is_strictly_after_and_macros() -> None:
    sched = cron("*/5 * * * *")
    due = at("2026-01-01T00:05:00")
    assert s.next_due(sched, due, 0) == at("2026-01-01T00:10:00")
    assert s.next_due(sched, due - 0.5, 0) == due
    assert s.next_due(cron("@daily"), due, 0) == at("2026-01-02T00:00:00")


def test_cron_that_never_fires_is_an_error() -> None:
    with pytest.raises(ValueError, match="never fires"):
        s.next_due(cron("0 0 31 2 *"), 0, 0)


def test_cron_across_dst_spring_forward() -> None:
    """02:30 does not exist in Paris on 2026-03-29: the daily run happens at 03:00."""
    sched = cron("30 2 * * *", "Europe/Paris")
    runs = s.next_runs(sched, at("2026-03-28T12:00:00", PARIS), 0, 3)
    assert [local(r) for r in runs] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_cron_across_dst_fall_back() -> None:
    """02:00-03:00 happens twice in Paris on 2026-10-25: an hourly job runs in both."""
    sched = cron("0 * * * *", "Europe/Paris")
    runs = s.next_runs(sched, at("2026-10-25T00:30:00", PARIS), 0, 4)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps == [3600.0, 3600.0, 3600.0]
    assert [local(r)[11:] for r in runs] == [
        "01:00:00+02:00",
        "02:00:00+02:00",
        "02:00:00+01:00",
        "03:00:00+01:00",
    ]


# ---- ISO 8601 -----------------------------------------------------------------------------


def test_iso_with_repetitions_ends() -> None:
    sched = iso("R3/2026-12-01T00:00:00Z/PT1H")
    runs = list(s.due_times(sched, at("2026-11-01T00:00:00"), 0))
    assert runs == [at("2026-12-01T00:00:00") + 3600 * k for k in range(3)]
    assert s.next_due(sched, runs[-1], 0) is None
    assert s.next_due(sched, runs[0], 0) == runs[1]


def test_iso_without_repetitions_and_without_start() -> None:
    sched = iso("R//PT10M")
    created = at("2026-05-05T10:00:00")
    assert s.next_due(sched, created - 1, created) == created
    later = at("2030-05-05T10:03:00")  # far ahead: skips forward, forever
    assert s.next_due(sched, later, created) == at("2030-05-05T10:10:00")


def test_iso_period_keeps_local_time_across_dst() -> None:
    """P1D is a calendar day (09:00 stays 09:00); PT24H is 24 elapsed hours."""
    start = "2026-03-28T09:00:00"  # no offset: read in the schedule's zone
    days = s.next_runs(iso(f"R/{start}/P1D", "Europe/Paris"), 0, 0, 3)
    assert [local(r)[11:16] for r in days] == ["09:00", "09:00", "09:00"]
    hours = s.next_runs(iso(f"R/{start}/PT24H", "Europe/Paris"), 0, 0, 3)
    assert [local(r)[11:16] for r in hours] == ["09:00", "10:00", "10:00"]


def test_iso_months_clamp_to_the_month_end() -> None:
    runs = s.next_runs(iso("R3/2026-01-31T00:00:00Z/P1M"), 0, 0, 3)
    assert [datetime.fromtimestamp(r, UTC).date().isoformat() for r in runs] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
    ]


# ---- missed runs and concurrency ----------------------------------------------------------


def test_on_time_run_is_started() -> None:
    sched = cron("* * * * *", starting_deadline=30)
    due = at("2026-01-01T00:01:00")
    got = s.missed(sched, due, due + 1, 0)
    assert got == s.Missed(due, 0, None, due + 60)


def test_late_run_past_deadline_is_skipped() -> None:
    sched = cron("* * * * *", starting_deadline=30)
    due = at("2026-01-01T00:01:00")
    got = s.missed(sched, due, due + 45, 0)
    assert got.run_at is None and got.skipped == 1 and got.latest_skipped == due
    assert got.next == due + 60


def test_runs_missed_while_down_one_catch_up() -> None:
    due = at("2026-01-01T00:01:00")
    now = due + 4 * 60 + 20  # 00:05:20: due at 01, 02, 03, 04, 05
    within = s.missed(cron("* * * * *", starting_deadline=30), due, now, 0)
    assert within.run_at == due + 240 and within.skipped == 4
    assert within.latest_skipped == due + 180 and within.next == due + 300
    past = s.missed(cron("* * * * *", starting_deadline=10), due, now, 0)
    assert past.run_at is None and past.skipped == 5
    no_deadline = s.missed(cron("* * * * *"), due, now + 3600, 0)
    assert no_deadline.run_at == due + 64 * 60 and no_deadline.skipped == 64
    paused = s.missed(cron("* * * * *"), due, now, 0, catch_up=False)
    assert paused == s.Missed(None, 0, None, due + 300)


def test_concurrency_decisions() -> None:
    assert s.concurrency("FORBID", 0) == "launch"
    assert s.concurrency("ALLOW", 2) == "launch"
    assert s.concurrency("FORBID", 1) == "skip"
    assert s.concurrency("REPLACE", 1) == "replace"


# ---- the graph ----------------------------------------------------------------------------


def test_cycle_path_and_none_for_a_dag() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None
    cycle = find_cycle({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    assert cycle is not None and cycle_text(cycle) == "a -> b -> c -> a"
    assert find_cycle({"x": ["x"]}) == ["x", "x"]


GRAPH = {"load": [], "clean": ["load"], "stats": ["load"], "report": ["clean", "stats"]}


def test_graph_text() -> None:
    assert as_text(GRAPH) == (
        "load\n"
        "|-- clean\n"
        "|   `-- report  (after clean, stats)\n"
        "`-- stats\n"
        "    `-- report  (after clean, stats)\n"
    )


def test_graph_dot() -> None:
    dot = as_dot(GRAPH, {"load": "IDLE"})
    assert dot.splitlines() == [
        "digraph jobs {",
        "  rankdir=LR;",
        "  node [shape=box];",
        '  "clean";',
        '  "load" [label="load\\nIDLE"];',
        '  "report";',
        '  "stats";',
        '  "load" -> "clean";',
        '  "clean" -> "report";',
        '  "stats" -> "report";',
        '  "load" -> "stats";',
        "}",
    ]


def test_job_checks() -> None:
    assert spec_problem(BatchJobSpec(name="ok", command=["true"])) is None
    assert "instances" in (spec_problem(BatchJobSpec(name="a", instances=2)) or "")
    assert "retries" in (spec_problem(BatchJobSpec(name="a", retries=-2)) or "")
    assert "itself" in (spec_problem(BatchJobSpec(name="a", after=["a"])) or "")
    bad = BatchJobSpec(name="a", schedules=[cron("61 * * * *")])
    assert "invalid cron" in (spec_problem(bad) or "")
    zone = BatchJobSpec(name="a", schedules=[cron("* * * * *", "Mars/Olympus")])
    assert "time zone" in (spec_problem(zone) or "")
    with pytest.raises(UsageError, match="unknown parent job"):
        check_graph({}, [BatchJobSpec(name="b", after=["nope"])])
    with pytest.raises(UsageError, match="b -> a -> b"):  # from the job being created
        check_graph({"a": ["b"]}, [BatchJobSpec(name="b", after=["a"])])
