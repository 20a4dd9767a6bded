"""drain: take a node out of service."""

from __future__ import annotations

from typing import Any

from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options


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
@click.option(
    "--grace",
    type=DURATION,
    help="Longest SIGTERM-to-SIGKILL wait of the tasks killed (default: each one's own).",
)
@click.option("--wait", "wait_", is_flag=True, help="Return once the node is DRAINED.")
@click.option(
    "--timeout",
    type=DURATION,
    help="With --wait: give up waiting after this long (exit 9; the drain goes on).",
)
@output_options()
@click.pass_context
def drain(
    ctx: click.Context,
    node: str,
    reason: str,
    on: str | None,
    grace: float | None,
    wait_: bool,
    timeout: float | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Drain NODE (an id, or /MOUNT/agents/ID): no new work is placed on it.

    \b
    Slurm: running jobs finish. Embedded engine (Mesos DRAIN_AGENT): service instances
    move to other nodes under their upgrade strategy (never below their minimum health
    capacity; one that can go nowhere else blocks the drain, as `nodes -o wide` shows);
    other tasks get SIGTERM, then SIGKILL after --grace (or their own grace if shorter);
    killed batch runs run again elsewhere. Once nothing runs there the node is DRAINED.
    --wait returns then; Ctrl-C or --timeout (exit 9) stop waiting, not the drain.
    `nodes up NODE` returns it to service.
      dshell drain n2 --on /hpc --reason 'disk swap'
      dshell drain a1 --grace 30s --wait --timeout 10m
    """
    from ..core import admin
    from ..render.views import AGENT

    if timeout is not None and not wait_:
        raise click.UsageError("--timeout goes with --wait")
    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    agent = admin.drain(session, node, on=on, reason=reason, grace=grace)
    if wait_ and agent.state not in ("DRAINED", "DOWN"):
        agent = _wait(session, out, node, on, timeout)
    if output or quiet:
        out.listing([agent], AGENT, fmt)
    else:
        out.info(f"{agent.mount}/agents/{agent.id}: {agent.state} ({agent.reason or reason})")


def _wait(session: Any, out: Any, node: str, on: str | None, timeout: float | None) -> Any:
    from ..core import admin
    from ..errors import Interrupted

    def progress(agent: Any) -> None:
        out.info(
            f"{agent.mount}/agents/{agent.id}: {agent.state}, {agent.tasks} task(s) left"
            + (f" ({agent.reason})" if agent.reason else "")
        )

    try:
        return admin.wait_drained(session, node, on=on, timeout=timeout, progress=progress)
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped waiting; the drain of {node} goes on (`nodes up {node}` cancels it)"
        ) from None
