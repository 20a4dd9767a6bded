"""inspect: one task with its full state history."""

from __future__ import annotations

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


@click.command()
@click.argument("ref")
@output_options()
@click.pass_context
def inspect(ctx: click.Context, ref: str, output: str | None, quiet: bool, raw: bool) -> None:
    """Show one task (id, unique prefix or path) with its full state history.

    Default output is YAML-like text on a TTY and JSON when piped; -o json|yaml|jsonpath=…
    choose. --raw adds the backend's own payload.
    """
    from ..core import tasks
    from ..render import Format

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    task = tasks.inspect(session, ref)
    if quiet:
        out.write(task.id + "\n")
        return
    if fmt.name in (None, "table", "wide"):
        fmt = Format("yaml" if session.env.stdout_isatty else "json", None, False, raw)
    if fmt.name in ("tsv", "name"):
        from ..render.views import TASK

        out.listing([task], TASK, fmt)
        return
    out.document(task, fmt)
