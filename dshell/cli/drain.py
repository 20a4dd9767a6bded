"""drain: take a node out of service."""

from __future__ import annotations

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


@click.command()
@click.argument("node")
@click.option(
    "--reason",
    default="drained by dshell",
    show_default=True,
    help="Why (shown by `nodes -o wide`).",
)
@click.option(
    "--on", "on", metavar="PATH", help="Cluster of the node (default: the current mount)."
)
@output_options()
@click.pass_context
def drain(
    ctx: click.Context,
    node: str,
    reason: str,
    on: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Drain NODE (an id, or /MOUNT/agents/ID): no new work is placed on it; running work
    finishes. `nodes up NODE` returns it to service.

    \b
      dshell drain n2 --on /hpc --reason 'disk swap'
      dshell drain /hpc/agents/n2
    """
    from ..core import admin
    from ..render.views import AGENT

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    agent = admin.drain(session, node, on=on, reason=reason)
    if output or quiet:
        out.listing([agent], AGENT, fmt)
    else:
        out.info(f"{agent.mount}/agents/{agent.id}: {agent.state} ({agent.reason or reason})")
