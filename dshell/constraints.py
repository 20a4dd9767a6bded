"""Marathon placement constraints: the one parser and validator.

A constraint is ``field:OPERATOR[:value]`` (or Marathon's array ``[field, OPERATOR, value]``,
a ``{field, operator, value}`` mapping, or a :class:`dshell.model.Constraint`); ``field`` is
``hostname`` (also ``@hostname``) or an agent attribute; the operators are :data:`OPERATORS`.

:func:`constraint_problem` is the validation rule, shared by its two users:

- the CLI (``run -C``) and the engines parse with :func:`to_rule` / :func:`parse_constraint`,
  which normalize (trim, upper-case the operator, ``@hostname`` -> ``hostname``, an empty value
  is none, ``"03"`` -> ``"3"``) and raise :class:`UsageError` naming the constraint;
- spec files are checked as written (:func:`dshell.specs.validate.check_constraint`): the
  problem's field (``field``, ``operator`` or ``value``) points the error at its line.

How a constraint is evaluated against agents is each engine's business (the local engine's is
:mod:`dshell_local.constraints`). Cheap to import: it is on the ``run`` path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from dshell.errors import UsageError
from dshell.model import Constraint

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "MAX_PER", "LIKE", "UNLIKE", "IS")
NEEDS_VALUE = ("MAX_PER", "LIKE", "UNLIKE", "IS")
COUNTED = ("MAX_PER", "GROUP_BY")  # their value is a positive integer
MATCHING = ("LIKE", "UNLIKE")  # their value is a regular expression (a full match)
HOSTNAME_FIELDS = ("hostname", "@hostname")
_EXPECTED = "expected FIELD:OPERATOR[:VALUE]"


class Problem(NamedTuple):
    """What is wrong with a constraint: which of its parts, and why."""

    field: str  # "field", "operator" or "value"
    message: str


class Rule(NamedTuple):
    """A validated constraint (hashable); ``str()`` is its ``field:OPERATOR[:value]`` form."""

    field: str
    operator: str
    value: str | None = None

    def __str__(self) -> str:
        return f"{self.field}:{self.operator}" + (
            f":{self.value}" if self.value is not None else ""
        )

    def constraint(self) -> Constraint:
        return Constraint(self.field, self.operator, self.value)


def constraint_problem(fld: str, op: str, value: str | None) -> Problem | None:
    """The first problem of the constraint as written (None: valid). Nothing is normalized:
    the parsers normalize first, spec files are checked as written."""
    if not fld.strip():
        return Problem("field", "the field (hostname or an agent attribute) is empty")
    if "\x00" in fld:
        return Problem("field", "the field contains a NUL byte")
    if op not in OPERATORS:
        return Problem(
            "operator", f"unknown operator {op!r}; expected one of {', '.join(OPERATORS)}"
        )
    if value is not None and "\x00" in value:
        return Problem("value", "the value contains a NUL byte")
    if op == "UNIQUE" and value is not None:
        return Problem("value", "UNIQUE takes no value")
    if op in NEEDS_VALUE and not value:
        return Problem("value", f"{op} needs a value")
    if op in COUNTED and value is not None and not _positive(value):
        return Problem("value", f"{op} needs a positive integer, got {value!r}")
    if op in MATCHING and value:
        try:
            re.compile(value)
        except re.error as exc:
            return Problem("value", f"{op} needs a regular expression, got {value!r}: {exc}")
    return None


def _positive(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) >= 1


def to_rule(item: object) -> Rule:
    """``"rack:GROUP_BY:3"``, ``["rack", "GROUP_BY", "3"]``, a ``{field, operator, value}``
    mapping, a Constraint or a Rule -> a validated, normalized Rule; UsageError naming it."""
    if isinstance(item, Constraint):
        parts: list[Any] = [item.field, item.operator, item.value]
    elif isinstance(item, Mapping):
        parts = [item.get("field"), item.get("operator"), item.get("value")]
    elif isinstance(item, str):
        parts = item.split(":", 2)
    elif isinstance(item, list | tuple):
        parts = list(item)
    else:
        raise UsageError(f"bad constraint {item!r}: {_EXPECTED}")
    shown = _shown(item, parts)
    if not 2 <= len(parts) <= 3 or not all(isinstance(p, str) for p in parts[:2]):
        raise UsageError(f"bad constraint {shown}: {_EXPECTED}")
    value = parts[2] if len(parts) == 3 else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"bad constraint {shown}: the value must be a string")
    fld, op, value = parts[0].strip(), parts[1].strip().upper(), value or None
    problem = constraint_problem(fld, op, value)
    if problem is not None:
        raise UsageError(f"bad constraint {shown}: {problem.message}")
    if fld == "@hostname":
        fld = "hostname"
    if op in COUNTED and value is not None:
        value = str(int(value))
    return Rule(fld, op, value)


def to_rules(items: Iterable[object]) -> tuple[Rule, ...]:
    return tuple(to_rule(i) for i in items)


def parse_constraint(item: object) -> Constraint:
    """Like :func:`to_rule`, as a Constraint."""
    return to_rule(item).constraint()


validate_constraint = parse_constraint


def parse_constraints(items: Iterable[object]) -> list[Constraint]:
    return [parse_constraint(i) for i in items]


def _shown(item: object, parts: list[Any]) -> str:
    if isinstance(item, str):
        return repr(item)
    return repr(":".join("" if p is None else str(p) for p in parts).rstrip(":"))
