"""nodes: agents and their resources."""

from __future__ import annotations

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


@click.command()
@click.argument("path", required=False)
@click.option("--sort-by", metavar="FIELD", help="Sort rows by a field (e.g. hostname).")
@output_options()
@click.pass_context
def nodes(
    ctx: click.Context,
    path: str | None,
    sort_by: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """List the agents (nodes) of every mount under PATH with total, reserved, allocated
    and used resources and their attributes (-o wide for all columns)."""
    from ..core import tasks
    from ..render.views import AGENT

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    result = tasks.nodes(session, path, sort_by)
    out.listing(result.rows, AGENT, fmt)
    result.finish(out)
