"""wait: block until tasks reach a state."""

from __future__ import annotations

from ..model import TaskState
from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options


@click.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--for",
    "for_",
    multiple=True,
    type=click.Choice([s.value for s in TaskState], case_sensitive=False),
    help="State to wait for (repeatable; default: any finished state).",
)
@click.option("--timeout", type=DURATION, help="Give up after this long (exit TIMEOUT, 9).")
@output_options()
@click.pass_context
def wait(
    ctx: click.Context,
    refs: tuple[str, ...],
    for_: tuple[str, ...],
    timeout: float | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Wait until each task reaches a state; print the tasks.

    Exits 0 when every task reached the state, TIMEOUT (9) when --timeout expired.
    Ctrl-C stops waiting; it does not touch the tasks.
    """
    from ..core import tasks
    from ..core.refs import expand_stdin, resolve_tasks
    from ..render.views import TASK

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    trefs = resolve_tasks(session, expand_stdin(session, refs))
    done = tasks.wait(trefs, states={s.upper() for s in for_} or None, timeout=timeout)
    out.listing(done, TASK, fmt)
