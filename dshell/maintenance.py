"""Pure helpers of the maintenance verbs (no I/O): times, durations and agent attributes.

Shared by the CLI (``drain``, ``maint``, ``nodes attr``) and the embedded engine, which checks
again what it is sent, so the two can never disagree on what is valid.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import UsageError

AGENT_STATES = ("UP", "DRAINING", "DRAINED", "DOWN")
MAX_WINDOW = 366 * 86400.0  # a window longer than a year is a typo

_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_ATTR_VALUE = re.compile(r"^[^\s,=\x00-\x1f\x7f]{1,256}$")
_RESERVED = ("hostname", "@hostname")
_RELATIVE = re.compile(r"^now(?:\s*([+-])\s*(.+))?$", re.IGNORECASE)


def parse_seconds(text: str, what: str) -> float:
    """'30s', '2m', '1h30m', '500ms' or plain seconds → seconds (UsageError otherwise)."""
    from .cli.options import parse_duration

    value = parse_duration(text, what)
    assert value is not None
    return value


def parse_when(text: str) -> tuple[float | None, float | None]:
    """A start time: ``(epoch, None)`` for RFC 3339 (``2026-12-01T22:00:00Z``, an offset is
    required), or ``(None, seconds from now)`` for ``now`` / ``now+10m`` (the engine adds its
    own clock). UsageError for anything else, or for a time before now given as ``now-…``."""
    text = text.strip()
    rel = _RELATIVE.match(text)
    if rel:
        sign, amount = rel.groups()
        if sign is None:
            return None, 0.0
        if sign == "-":
            raise UsageError(f"bad time {text!r}: a maintenance window cannot start in the past")
        return None, parse_seconds(amount, f"time offset in {text!r}")
    stamp = text[:-1] + "+00:00" if text[-1:] in "zZ" and text else text
    try:
        when = dt.datetime.fromisoformat(stamp)
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: expected RFC 3339 (e.g. 2026-12-01T22:00:00Z) or now+DURATION"
        ) from None
    if when.tzinfo is None:
        raise UsageError(f"bad time {text!r}: add a time zone (Z or an offset such as +01:00)")
    return when.timestamp(), None


def window_duration(text: str) -> float:
    """A window's length: a positive duration of at most a year."""
    seconds = parse_seconds(text, "duration")
    if not 0 < seconds <= MAX_WINDOW:
        raise UsageError(f"bad duration {text!r}: must be more than 0 and at most 366d")
    return seconds


def attribute_problem(name: str, value: str | None = None) -> str | None:
    """Why an agent attribute name (and value) is not acceptable, or None."""
    if name.lower() in _RESERVED:
        return f"{name!r} is not an attribute (constraints read the agent's hostname)"
    if not _ATTR_NAME.match(name):
        return (
            f"bad attribute name {name!r}: a letter or '_', then letters, digits, '_', '.', '-' "
            "(at most 64)"
        )
    if value is not None and not _ATTR_VALUE.match(value):
        return (
            f"bad value {value!r} for attribute {name!r}: 1 to 256 characters, no spaces, "
            "',' or '='"
        )
    return None


def parse_attr_changes(items: tuple[str, ...] | list[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` (set) and ``key-`` (remove) words → (to set, to remove)."""
    if not items:
        raise UsageError("nodes attr: give key=value to set or key- to remove")
    to_set: dict[str, str] = {}
    to_unset: list[str] = []
    for item in items:
        if "=" in item:
            name, _, value = item.partition("=")
            problem = attribute_problem(name, value)
        elif item.endswith("-") and len(item) > 1:
            name, value = item[:-1], None
            problem = attribute_problem(name)
        else:
            raise UsageError(f"nodes attr: {item!r}: expected key=value or key-")
        if problem:
            raise UsageError(f"nodes attr: {problem}")
        if name in to_set or name in to_unset:
            raise UsageError(f"nodes attr: {name!r} is given twice")
        if value is None:
            to_unset.append(name)
        else:
            to_set[name] = value
    return to_set, to_unset


def rfc3339(epoch: float) -> str:
    """An epoch time as RFC 3339 in UTC, to the second."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
