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

    A multi-process (Aurora/Thermos) task also lists its processes with their states
    (``processes``; empty for other tasks). Default output is YAML-like text on a TTY and
    JSON when piped; -o json|yaml|jsonpath=… choose. --raw adds the backend's own payload.
    """
    from ..core import processes
    from ..model import to_builtins
    from ..render import Format

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    if fmt.name in (None, "table", "wide"):
        fmt = Format("yaml" if session.env.stdout_isatty else "json", None, False, raw)
    document = not quiet and fmt.name not in ("tsv", "name")
    task, procs = processes.inspect(session, ref, with_processes=document)
    if quiet:
        out.write(task.id + "\n")
        return
    if not document:
        from ..render.views import TASK

        out.listing([task], TASK, fmt)
        return
    doc = to_builtins(task, raw=fmt.raw)
    doc["processes"] = to_builtins(procs)
    out.document(doc, fmt)
