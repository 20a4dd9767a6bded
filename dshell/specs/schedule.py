"""Schedules of batch jobs: 5-field cron expressions and ISO 8601 repeating intervals.

Only syntax is checked here (and that the time zone exists); when the next run falls is the
engine's business. Cron follows crontab(5): minute hour day-of-month month day-of-week, with
``*``, ``a-b``, ``/step``, lists and the month/day names. ISO 8601 follows Chronos:
``R[n]/[start]/duration``, e.g. ``R5/2026-12-01T00:00:00Z/PT1H``.
"""

from __future__ import annotations

import re
from datetime import datetime

from dshell.specs.issues import Issues
from dshell.specs.model import ScheduleSpec

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, low, high, names mapped to numbers)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_DURATION = re.compile(
    r"^P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
CONCURRENCY = ("ALLOW", "FORBID", "REPLACE")


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int | None:
    number = names.get(text.upper()) if not _digits(text) else int(text)
    return number if number is not None and low <= number <= high else None


def cron_error(expr: str) -> str | None:
    """Why ``expr`` is not a valid 5-field cron expression, or None when it is."""
    if expr.strip() in _MACROS:
        return None
    parts = expr.split()
    if len(parts) != 5:
        return f"expected 5 fields (minute hour day month weekday), got {len(parts)}"
    for text, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in text.split(","):
            base, slash, step = item.partition("/")
            if slash and (not _digits(step) or int(step) == 0):
                return f"bad step {step!r} in the {name} field"
            if base == "*":
                continue
            lo, _, hi = base.partition("-")
            first = _value(lo, low, high, names)
            last = _value(hi, low, high, names) if hi else first
            if first is None or last is None:
                return f"bad {name} {item!r} (expected {low}-{high})"
            if last < first:
                return f"bad range {base!r} in the {name} field"
    return None


def duration_seconds(text: str) -> float | None:
    """An ISO 8601 duration (``PT1H30M``, ``P1D``) in seconds (months = 30 days), or None."""
    m = _DURATION.match(text)
    if not m:
        return None
    return sum(float(v) * unit for v, unit in zip(m.groups(), _UNIT_SECONDS, strict=True) if v)


def iso8601_error(expr: str) -> str | None:
    """Why ``expr`` is not ``R[n]/[start]/duration``, or None when it is."""
    parts = expr.split("/")
    if len(parts) != 3:
        return "expected R[n]/[start]/duration, e.g. R5/2026-12-01T00:00:00Z/PT1H"
    repeat, start, period = parts
    if not re.fullmatch(r"R\d*", repeat):
        return f"bad repetition {repeat!r}: expected R (forever) or Rn"
    if start:
        try:
            datetime.fromisoformat(start)
        except ValueError:
            return f"bad start time {start!r}: expected like 2026-12-01T00:00:00Z"
    seconds = duration_seconds(period)
    if seconds is None:
        return f"bad period {period!r}: expected an ISO 8601 duration like PT1H or P1D"
    if seconds <= 0:
        return f"the period {period!r} must be longer than 0"
    return None


# The shape of an IANA zone name (Europe/Paris, America/Argentina/Buenos_Aires, Etc/GMT+5).
# ZoneInfo looks a name up as a package path: a name of a thousand parts recurses too deep.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]{1,64}(?:/[A-Za-z0-9_+-]{1,64}){0,3}")


def timezone_error(name: str) -> str | None:
    """Why ``name`` is not a known IANA time zone, or None."""
    import zoneinfo

    try:
        if not _ZONE_NAME.fullmatch(name):
            raise ValueError(name)
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        shown = name if len(name) <= 40 else name[:37] + "..."
        return f"unknown time zone {shown!r}: expected an IANA name like Europe/Paris or UTC"
    return None


def check_schedule(sched: ScheduleSpec, issues: Issues) -> None:
    """Exactly one of cron/iso8601, each valid; a real time zone and a known policy."""
    if (sched.cron is None) == (sched.iso8601 is None):
        issues.error_at(sched, "cron", "give exactly one of cron or iso8601")
    elif sched.cron is not None and (why := cron_error(sched.cron)):
        issues.error_at(sched, "cron", f"invalid cron expression {sched.cron!r}: {why}")
    elif sched.iso8601 is not None and (why := iso8601_error(sched.iso8601)):
        issues.error_at(sched, "iso8601", f"invalid ISO 8601 schedule {sched.iso8601!r}: {why}")
    if why := timezone_error(sched.timezone):
        issues.error_at(sched, "timezone", why)
    if sched.concurrency_policy not in CONCURRENCY:
        issues.error_at(
            sched,
            "concurrency_policy",
            f"expected one of {', '.join(CONCURRENCY)}, got {sched.concurrency_policy!r}",
        )
    if sched.starting_deadline is not None and sched.starting_deadline < 0:
        issues.error_at(sched, "starting_deadline", "must be 0 or more seconds")
