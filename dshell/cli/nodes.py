"""nodes: agents and their resources; `nodes up` returns a drained node to service;
`nodes attr` changes a node's attributes."""

from __future__ import annotations

from typing import Any

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


class NodesGroup(click.Group):
    """`nodes [PATH] [OPTIONS]` lists; `nodes up NODE` is a sub-verb.

    A first word that is not a sub-verb is the PATH of the listing, so `nodes /hpc` and
    `nodes -o json` keep working next to `nodes up n2`.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_only = args[:1] in (["-h"], ["--help"])
        if not help_only and (not args or args[0] not in self.commands):
            args = ["ls", *args]
        return super().parse_args(ctx, args)


@click.group(cls=NodesGroup)
def nodes() -> None:
    """List the agents (nodes) of every mount under PATH with total, reserved, allocated
    and used resources and their attributes (-o wide for all columns).

    \b
      dshell nodes /              # every cluster
      dshell nodes up n2 --on /hpc
      dshell nodes attr a1 rack=r3 gpu-
    STATE is UP, DRAINING, DRAINED or DOWN (a maintenance window); -o wide shows why.
    """


@nodes.command("ls")
@click.argument("path", required=False)
@click.option("--sort-by", metavar="FIELD", help="Sort rows by a field (e.g. hostname).")
@output_options()
@click.pass_context
def nodes_ls(
    ctx: click.Context,
    path: str | None,
    sort_by: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """List the agents of every mount under PATH (the default sub-verb)."""
    from ..core import tasks
    from ..render.views import AGENT

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    result = tasks.nodes(session, path, sort_by)
    out.listing(result.rows, AGENT, fmt)
    result.finish(out)


@nodes.command("up")
@click.argument("node")
@click.option(
    "--on", "on", metavar="PATH", help="Cluster of the node (default: the current mount)."
)
@click.pass_context
def nodes_up(ctx: click.Context, node: str, on: str | None) -> Any:
    """Return a drained NODE to service (stops a drain in progress; on the embedded engine
    it also ends the maintenance window that took the node out of service)."""
    from ..core import admin

    session = session_of(ctx)
    agent = admin.undrain(session, node, on=on)
    out, _ = out_fmt(session, None)
    out.info(f"{agent.mount}/agents/{agent.id}: {agent.state}")


@nodes.command("attr")
@click.argument("node")
@click.argument("changes", nargs=-1, required=True)
@click.option(
    "--on", "on", metavar="PATH", help="Cluster of the node (default: the current mount)."
)
@output_options()
@click.pass_context
def nodes_attr(
    ctx: click.Context,
    node: str,
    changes: tuple[str, ...],
    on: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> Any:
    """Set (key=value) or remove (key-) attributes of NODE. Placement constraints see the
    change for new placements; tasks already placed stay where they are.

    \b
      dshell nodes attr a1 rack=r3 ssd=yes
      dshell nodes attr a1 ssd-
    """
    from ..core import admin
    from ..maintenance import parse_attr_changes
    from ..render.views import AGENT

    to_set, to_unset = parse_attr_changes(changes)
    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    agent = admin.set_attributes(session, node, to_set, to_unset, on=on)
    if output or quiet:
        out.listing([agent], AGENT, fmt)
    else:
        shown = ",".join(f"{k}={v}" for k, v in sorted(agent.attributes.items())) or "-"
        out.info(f"{agent.mount}/agents/{agent.id}: {shown}")
