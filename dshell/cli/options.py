"""Options shared by many verbs, so every verb spells them the same way."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import UsageError
from ._click import click

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_HELP = "Output format: table|wide|tsv|json|jsonl|yaml|name|jsonpath=EXPR."


def output_options(*, short: bool = True) -> Callable[[F], F]:
    """-o/--output, -q/--quiet and --raw. ``short=False`` for verbs that keep mount(8)'s -o."""

    def deco(fn: F) -> F:
        names = ("-o", "--output") if short else ("--output",)
        fn = click.option("--raw", is_flag=True, help="Include raw backend payloads in json/yaml.")(
            fn
        )
        fn = click.option("-q", "--quiet", is_flag=True, help="Print ids only.")(fn)
        return click.option(*names, "output", metavar="FORMAT", help=OUTPUT_HELP)(fn)

    return deco


def listing_options(fn: F) -> F:
    """--sort-by, -l/--selector, -a/--all, --limit."""
    fn = click.option("--limit", type=click.IntRange(min=0), help="Show at most N rows.")(fn)
    fn = click.option("-a", "--all", "all_", is_flag=True, help="Include finished objects.")(fn)
    fn = click.option(
        "-l",
        "--selector",
        multiple=True,
        metavar="KEY=VALUE",
        help="Filter on labels (repeatable).",
    )(fn)
    return click.option(
        "--sort-by", metavar="FIELD", help="Sort rows by a field (e.g. created_at)."
    )(fn)


def spec_options(fn: F) -> F:
    """--format, --bind and --job for the verbs that read spec files."""
    fn = click.option(
        "--job",
        "job_key",
        metavar="KEY",
        help="Aurora: the job to use (cluster/role/env/name, or its name).",
    )(fn)
    fn = click.option(
        "--bind",
        "binds",
        multiple=True,
        metavar="K=V",
        help="Aurora: bind a template variable (repeatable).",
    )(fn)
    return click.option(
        "--format", "spec_format", metavar="FMT", help="The spec's format if not detected."
    )(fn)


def parse_kv(items: tuple[str, ...] | list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad {what} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d)?)+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str | None, what: str = "duration") -> float | None:
    """'30s', '2m', '1h30m', '500ms' or plain seconds → seconds."""
    if text is None:
        return None
    text = text.strip()
    if not text or not _DURATION.match(text):
        raise UsageError(f"bad {what} {text!r}: expected e.g. 30s, 2m, 1h30m or seconds")
    return sum(float(n) * _UNITS[u or None] for n, u in _PART.findall(text))


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(value)
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


DURATION = Duration()
