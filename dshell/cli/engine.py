"""engine: control the embedded engine daemon."""

from __future__ import annotations

from typing import Any

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


def _show(ctx: click.Context, data: Any, output: str | None) -> None:
    from ..render import Format

    session = session_of(ctx)
    out, fmt = out_fmt(session, output)
    out.document(data, fmt if fmt.name else Format("yaml" if session.env.stdout_isatty else "json"))


@click.group()
def engine() -> None:
    """Control the embedded engine (the /local cluster). It starts by itself on first use."""


@engine.command("start")
@output_options()
@click.pass_context
def start(ctx: click.Context, output: str | None, quiet: bool, raw: bool) -> None:
    """Start the engine daemon if it is not running; re-adopts tasks left running."""
    from dshell_local import control

    _show(ctx, control.start(wait=True), output)


@engine.command("stop")
@click.option(
    "--kill-tasks",
    is_flag=True,
    help="Kill every running task first (default: leave them running).",
)
@click.pass_context
def stop(ctx: click.Context, kill_tasks: bool) -> None:
    """Stop the engine daemon.

    Tasks keep running unless --kill-tasks; the next start re-adopts them.
    """
    from dshell_local import control

    stopped = control.stop(kill_tasks=kill_tasks)
    out, _ = out_fmt(session_of(ctx), None)
    out.info("engine stopped" if stopped else "engine was not running")


@engine.command("status")
@output_options()
@click.pass_context
def status(ctx: click.Context, output: str | None, quiet: bool, raw: bool) -> None:
    """pid, version, socket, state dir, agents and the isolation in force."""
    from dshell_local import control

    from ..errors import UnreachableError

    status = control.status()
    if status is None:
        raise UnreachableError("the engine is not running (`dshell engine start` starts it)")
    _show(ctx, status, output)
