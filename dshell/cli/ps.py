"""ps: list tasks."""

from __future__ import annotations

from ..backend import TaskQuery
from ..model import TaskState
from ._click import click
from .common import out_fmt, session_of
from .options import listing_options, output_options, parse_kv

STATES = [s.value for s in TaskState]


@click.command()
@click.argument("path", required=False)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES, case_sensitive=False),
    help="Only tasks in this state (repeatable); implies finished ones for terminal states.",
)
@click.option("--service", help="Only instances of this service.")
@click.option(
    "-w", "--watch", is_flag=True, help="After the listing, stream changes (jsonl when piped)."
)
@listing_options
@output_options()
@click.pass_context
def ps(
    ctx: click.Context,
    path: str | None,
    states: tuple[str, ...],
    service: str | None,
    watch: bool,
    sort_by: str | None,
    selector: tuple[str, ...],
    all_: bool,
    limit: int | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """List tasks of every mount under PATH (default: the current path).

    \b
    Active tasks only unless -a. On a TTY a table; piped, tab-separated with a header.
    A mount that fails prints a warning and the exit code is PARTIAL (11).
    Examples:
      dshell ps /                      # every mounted cluster
      dshell ps -a --state FAILED -q   # ids of failed tasks, for `dshell kill -`
      dshell ps -o jsonpath='$[*].id'
    """
    from ..core import tasks
    from ..render.views import TASK

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    query = TaskQuery(
        all=all_,
        states=[s.upper() for s in states],
        selector=parse_kv(selector, "selector"),
        service=service,
        limit=limit,
    )
    result = tasks.ps(session, path, query, sort_by)
    out.listing(result.rows, TASK, fmt)
    if watch:
        from .events import follow_events

        follow_events(session, path, fmt, tasks_only=True)
    result.finish(out)
