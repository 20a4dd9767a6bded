"""When batch jobs run: the pure maths of schedules (no I/O, no clock of its own).

* **cron** (5 fields, crontab(5), plus the ``@daily``-style macros) is evaluated by the
  cronsim library in the schedule's time zone, with Debian cron's DST rules: a daily job at
  02:30 on the night the clocks skip that hour runs at 03:00; on the night 02:00-03:00
  happens twice, a job at a fixed time runs once and an hourly one runs in both hours.
* **ISO 8601 repeating intervals** follow Chronos: ``R[n]/[start]/period``. ``Rn`` is ``n``
  runs in all (the first at ``start``), ``R`` repeats forever, an empty start is the job's
  creation time, and a start without an offset is read in the schedule's time zone. The
  date part of a period (years, months, weeks, days) is added on the local calendar and the
  time part (hours, minutes, seconds) in elapsed time, so ``P1D`` keeps 09:00 across a DST
  change while ``PT24H`` does not.
* **missed runs**: a run is due at a time; when it is started later than the schedule's
  ``starting_deadline`` after that time it is skipped (and recorded). Runs missed while the
  engine was down, or while it was too busy, obey the same rule with at most one catch-up
  run per schedule, as Metronome and Kubernetes CronJobs do: the latest missed one.
* **concurrency**: a run due while an earlier one of the same job is still active is started
  anyway (ALLOW), skipped (FORBID), or started after the active ones are killed (REPLACE).

Times are epoch seconds (floats).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from dshell.specs.model import ScheduleSpec

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_PERIOD = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
MAX_CATCH_UP_SCAN = 100_000  # due times looked at when counting what was missed


class Period(NamedTuple):
    """An ISO 8601 duration split into calendar months and days, and elapsed seconds."""

    months: int
    days: int
    seconds: float

    @property
    def approx(self) -> float:
        """Its length in seconds, roughly (months of 30 days): only to skip ahead."""
        return self.months * 30 * 86400 + self.days * 86400 + self.seconds


class Iso(NamedTuple):
    """A parsed ``R[n]/[start]/period``; ``repeats`` None: forever."""

    repeats: int | None
    start: datetime  # aware
    period: Period


def parse_period(text: str) -> Period:
    m = _PERIOD.match(text)
    if not m:
        raise ValueError(f"bad ISO 8601 period {text!r}")
    y, mo, w, d, h, mi, s = m.groups()
    months = int(y or 0) * 12 + int(mo or 0)
    days = int(w or 0) * 7 + int(d or 0)
    seconds = float(h or 0) * 3600 + float(mi or 0) * 60 + float(s or 0)
    if months == 0 and days == 0 and seconds <= 0:
        raise ValueError(f"the period {text!r} must be longer than 0")
    return Period(months, days, seconds)


def parse_iso(expr: str, tz: ZoneInfo, created: float) -> Iso:
    """``R[n]/[start]/period`` with the time zone for a start without an offset."""
    repeat, start_text, period_text = expr.split("/")
    count = int(repeat[1:]) if repeat[1:] else None
    if start_text:
        start = datetime.fromisoformat(start_text)
        start = start.replace(tzinfo=tz) if start.tzinfo is None else start.astimezone(tz)
    else:
        start = datetime.fromtimestamp(created, tz)
    return Iso(count, start, parse_period(period_text))


def _add_months(local: datetime, months: int) -> datetime:
    """``local`` plus whole months, the day clamped to the month's last (Jan 31 + 1M = Feb 28)."""
    if not months:
        return local
    total = local.month - 1 + months
    year, month = local.year + total // 12, total % 12 + 1
    import calendar

    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def iso_occurrence(iso: Iso, k: int) -> float:
    """The k-th due time (k = 0 is the start) as epoch seconds, DST-correct."""
    tz = iso.start.tzinfo
    naive = iso.start.replace(tzinfo=None)
    local = _add_months(naive, iso.period.months * k) + timedelta(days=iso.period.days * k)
    # the wall-clock date part in the zone (fold=0: the first of a repeated hour), then time
    stamp = local.replace(tzinfo=tz).timestamp()
    return stamp + iso.period.seconds * k


def iso_index_after(iso: Iso, after: float) -> int:
    """The index of the first occurrence strictly after ``after``."""
    start = iso.start.timestamp()
    if after < start:
        return 0
    k = max(0, int((after - start) // max(iso.period.approx, 1e-9)) - 2)
    while iso_occurrence(iso, k) <= after:
        k += 1
    return k


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def cron_expr(expr: str) -> str:
    return MACROS.get(expr.strip(), expr)


def _cron_after(expr: str, tz: ZoneInfo, after: float) -> Iterator[float]:
    from cronsim import CronSim, CronSimError  # engine only: the CLI never imports it

    # cronsim starts at whole seconds and yields times after its start
    start = datetime.fromtimestamp(math.floor(after), tz)
    try:
        times = CronSim(cron_expr(expr), start)
    except CronSimError as exc:  # e.g. "0 0 31 2 *": a day no month in it has
        raise ValueError(f"cron expression {expr!r} never fires: {exc}") from None
    for due in times:
        stamp = due.timestamp()
        if stamp > after:
            yield stamp


def due_times(sched: ScheduleSpec, after: float, created: float) -> Iterator[float]:
    """The due times of ``sched`` strictly after ``after``, in order (finite for ``Rn``)."""
    tz = zone(sched.timezone)
    if sched.cron is not None:
        yield from _cron_after(sched.cron, tz, after)
        return
    assert sched.iso8601 is not None
    iso = parse_iso(sched.iso8601, tz, created)
    k = iso_index_after(iso, after)
    while iso.repeats is None or k < iso.repeats:
        yield iso_occurrence(iso, k)
        k += 1


def next_due(sched: ScheduleSpec, after: float, created: float) -> float | None:
    """The first due time strictly after ``after``; None when the schedule is exhausted."""
    return next(due_times(sched, after, created), None)


def next_runs(sched: ScheduleSpec, after: float, created: float, n: int) -> list[float]:
    out = []
    for due in due_times(sched, after, created):
        out.append(due)
        if len(out) >= n:
            break
    return out


class Missed(NamedTuple):
    """What to do with the due times that passed: run ``run_at`` (the latest one, within the
    deadline) or not (None); ``skipped`` due times are recorded as skipped; ``next`` is the
    first due time still ahead (None: exhausted)."""

    run_at: float | None
    skipped: int
    latest_skipped: float | None
    next: float | None


def missed(
    sched: ScheduleSpec, first_due: float, now: float, created: float, *, catch_up: bool = True
) -> Missed:
    """Decide about every due time from ``first_due`` up to ``now`` (the missed-run rule).

    All but the latest are skipped (at most one catch-up run). The latest runs if it is within
    ``starting_deadline`` of ``now`` (no deadline: always), else it is skipped too.
    ``catch_up=False`` (a paused job) skips nothing and runs nothing: it only moves on.
    """
    passed = [first_due]
    upcoming: float | None = None
    for due in due_times(sched, first_due, created):
        if due > now:
            upcoming = due
            break
        passed.append(due)
        if len(passed) > MAX_CATCH_UP_SCAN:  # a schedule far behind: jump to now
            passed = [passed[-1]]
            upcoming = next_due(sched, now, created)
            break
    if not catch_up:
        return Missed(None, 0, None, upcoming)
    latest = passed[-1]
    if in_deadline(latest, now, sched.starting_deadline):
        skipped = len(passed) - 1
        return Missed(latest, skipped, passed[-2] if skipped else None, upcoming)
    return Missed(None, len(passed), latest, upcoming)


def in_deadline(due: float, now: float, deadline: float | None) -> bool:
    """Whether a run due at ``due`` may still start at ``now``."""
    return deadline is None or now - due <= deadline


def concurrency(policy: str, active_runs: int) -> str:
    """``launch``, ``skip`` or ``replace`` for a run due while ``active_runs`` are active."""
    if active_runs == 0 or policy == "ALLOW":
        return "launch"
    return "replace" if policy == "REPLACE" else "skip"


def describe(sched: ScheduleSpec) -> str:
    """One line for people: the expression and its zone."""
    expr = sched.cron if sched.cron is not None else sched.iso8601
    return f"{expr} ({sched.timezone})" if sched.timezone != "UTC" else f"{expr}"


def iso_time(stamp: float | None) -> str | None:
    """RFC 3339 UTC (the model's time format)."""
    if stamp is None:
        return None
    when = datetime.fromtimestamp(stamp, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
