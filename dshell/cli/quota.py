"""quota, reserve, unreserve: roles' quota limits and weights, reservations on nodes."""

from __future__ import annotations

from typing import Any

from ._click import click
from .common import out_fmt, session_of
from .options import output_options

ON_HELP = "Cluster (default: the current mount)."
ON_NODE = "Cluster of the node (default: the current mount)."
QUOTA_KEYS = ("cpus", "mem", "disk", "weight")
RESERVE_KEYS = ("cpus", "mem", "disk")


@click.group()
def quota() -> None:
    """Quota limits and weights of roles (Mesos quota limits and role weights).

    \b
    Every task runs under a role: --role, or the engine user's name. A launch that would take
    its role beyond a limit waits (STAGING, the reason in `ps -o wide`) until the role's tasks
    end; a role's weight scales its share when roles contend (DRF). mem and disk are in MiB.
    Backends without quotas end these verbs with UNSUPPORTED (10); bad input is a usage
    error (2).
      dshell quota set alice cpus=4 mem=8192
      dshell quota set batch weight=3
      dshell quota ls
      dshell quota rm alice
    """


@quota.command("ls")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def quota_ls(
    ctx: click.Context, on: str | None, output: str | None, quiet: bool, raw: bool
) -> None:
    """List the roles with a quota, a weight, a reservation or work: limits ('-': none),
    what they hold and how many of their tasks wait."""
    from ..core import admin
    from ..render.views import QUOTA

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    out.listing(admin.quota_list(session, on), QUOTA, fmt)


@quota.command("set")
@click.argument("role")
@click.argument("limits", nargs=-1, required=True)
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def quota_set(
    ctx: click.Context,
    role: str,
    limits: tuple[str, ...],
    on: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Set limits of ROLE (cpus=N mem=MiB disk=MiB) and/or its weight=N; limits not given
    stay as they were."""
    from ..core import admin

    sizes = admin.parse_sizes(limits, "quota set", QUOTA_KEYS)
    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    _show(out, fmt, output or quiet, admin.quota_set(session, role, sizes, on=on))


@quota.command("rm")
@click.argument("role")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def quota_rm(
    ctx: click.Context, role: str, on: str | None, output: str | None, quiet: bool, raw: bool
) -> None:
    """Remove the limits and weight of ROLE (its waiting tasks may start; reservations stay)."""
    from ..core import admin

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    _show(out, fmt, output or quiet, admin.quota_rm(session, role, on=on))


def _reserve(ctx: click.Context, node: str, role: str, sizes: tuple[str, ...], **kw: Any) -> None:
    from ..core import admin

    undo = kw.pop("undo")
    verb = "unreserve" if undo else "reserve"
    parsed = admin.parse_sizes(sizes, verb, RESERVE_KEYS)
    session = session_of(ctx)
    out, fmt = out_fmt(session, kw["output"], kw["quiet"], kw["raw"])
    result = admin.reserve(session, node, role, parsed, unreserve=undo, on=kw["on"])
    _show(out, fmt, kw["output"] or kw["quiet"], result)


@click.command()
@click.argument("node")
@click.argument("role")
@click.argument("sizes", nargs=-1, required=True)
@click.option(
    "--on", "on", metavar="PATH", help="Cluster of the node (default: the current mount)."
)
@output_options()
@click.pass_context
def reserve(ctx: click.Context, node: str, role: str, sizes: tuple[str, ...], **kw: Any) -> None:
    """Reserve part of NODE for ROLE (cpus=N mem=MiB disk=MiB; Mesos dynamic reservations):
    only ROLE is offered it, other roles see the rest of the node. Refused when larger than
    the node's unreserved, unallocated resources. `nodes -o wide` shows reservations.

    \b
      dshell reserve a1 alice cpus=2 mem=1024
    """
    _reserve(ctx, node, role, sizes, undo=False, **kw)


@click.command()
@click.argument("node")
@click.argument("role")
@click.argument("sizes", nargs=-1)
@click.option(
    "--on", "on", metavar="PATH", help="Cluster of the node (default: the current mount)."
)
@output_options()
@click.pass_context
def unreserve(ctx: click.Context, node: str, role: str, sizes: tuple[str, ...], **kw: Any) -> None:
    """Give back ROLE's reservation on NODE: all of it, or the sizes given (cpus=N mem=MiB).

    \b
      dshell unreserve a1 alice
      dshell unreserve a1 alice cpus=1
    """
    _reserve(ctx, node, role, sizes, undo=True, **kw)


def _show(out: Any, fmt: Any, listing: Any, q: Any) -> None:
    from ..render.views import QUOTA

    if listing:
        out.listing([q], QUOTA, fmt)
        return
    limits = " ".join(f"{k}={v:g}" for k, v in sorted(q.limits.items())) or "no limits"
    reserved = ""
    if q.reserved.cpus or q.reserved.mem or q.reserved.disk:
        reserved = f", reserved cpus={q.reserved.cpus:g} mem={q.reserved.mem:g}"
    out.info(f"{q.mount}: role {q.role}: {limits}, weight {q.weight:g}{reserved}")
