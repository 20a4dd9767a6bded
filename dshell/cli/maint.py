"""maint: maintenance windows of nodes (Mesos maintenance schedules)."""

from __future__ import annotations

from typing import Any

from ._click import click
from .common import out_fmt, session_of
from .options import output_options

ON_HELP = "Cluster of the node (default: the current mount)."


@click.group()
def maint() -> None:
    """Maintenance windows: a node is drained ahead of its window (see `drain`), DOWN during
    it (nothing placed there, anything left killed at its start) and UP after it.

    \b
    Backends without maintenance windows end these verbs with UNSUPPORTED (10); an unknown
    node is NOT_FOUND (4); a bad time or duration is a usage error (2).
      dshell maint schedule a1 --start 2026-12-01T22:00:00Z --duration 2h
      dshell maint schedule a1 --start now+10m --duration 30m
      dshell maint ls
      dshell maint cancel a1
    """


@maint.command("ls")
@click.option("--on", "on", metavar="PATH", help="Cluster (default: the current mount).")
@output_options()
@click.pass_context
def maint_ls(
    ctx: click.Context, on: str | None, output: str | None, quiet: bool, raw: bool
) -> None:
    """List the maintenance windows, earliest first: SCHEDULED, DRAINING (the node drains
    ahead of it) or ACTIVE (the node is DOWN)."""
    from ..core import admin
    from ..render.views import MAINT

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    out.listing(admin.maint_list(session, on), MAINT, fmt)


@maint.command("schedule")
@click.argument("node")
@click.option(
    "--start",
    required=True,
    metavar="TIME",
    help="RFC 3339 (2026-12-01T22:00:00Z, an offset is required), now or now+DURATION.",
)
@click.option("--duration", required=True, metavar="D", help="Length of the window: 30m, 2h…")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def maint_schedule(
    ctx: click.Context,
    node: str,
    start: str,
    duration: str,
    on: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Schedule a maintenance window of NODE (windows of one node may not overlap)."""
    from ..core import admin
    from ..maintenance import parse_when, window_duration
    from ..render.views import MAINT

    at, start_in = parse_when(start)
    seconds = window_duration(duration)
    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    window = admin.maint_schedule(
        session, node, start=at, start_in=start_in, duration=seconds, on=on
    )
    if output or quiet:
        out.listing([window], MAINT, fmt)
    else:
        out.info(_describe(window))


@maint.command("cancel")
@click.argument("node")
@click.option("--all", "every", is_flag=True, help="Cancel every window of NODE.")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def maint_cancel(
    ctx: click.Context,
    node: str,
    every: bool,
    on: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Cancel the next (or current) maintenance window of NODE, or --all of them. A node
    drained or DOWN for that window returns to service."""
    from ..core import admin
    from ..render.views import MAINT

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    gone = admin.maint_cancel(session, node, every=every, on=on)
    if output or quiet:
        out.listing(gone, MAINT, fmt)
    else:
        for window in gone:
            out.info(_describe(window))


def _describe(w: Any) -> str:
    return f"{w.mount}/agents/{w.agent}: window {w.id} {w.start} to {w.end} {w.state}"
