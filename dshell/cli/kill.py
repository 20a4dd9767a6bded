"""kill: stop tasks."""

from __future__ import annotations

import signal as signals

from ..errors import UsageError
from ._click import click
from .common import confirm, out_fmt, session_of
from .options import DURATION, output_options


def parse_signal(text: str | None) -> int | None:
    """TERM, SIGTERM, 15 → 15."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise UsageError(
            f"unknown signal {text!r} (e.g. TERM, KILL, HUP, USR1 or a number)"
        ) from None


@click.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "-s",
    "--signal",
    "sig",
    metavar="SIG",
    help="Send only this signal (e.g. HUP); no grace, no SIGKILL.",
)
@click.option(
    "--grace",
    type=DURATION,
    help="Time between SIGTERM and SIGKILL (default: the backend's, 5s locally).",
)
@click.option(
    "--scale", is_flag=True, help="Service instances: lower the count instead of replacing them."
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before killing several tasks.")
@output_options()
@click.pass_context
def kill(
    ctx: click.Context,
    refs: tuple[str, ...],
    sig: str | None,
    grace: float | None,
    scale: bool,
    yes: bool,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Stop tasks: SIGTERM to the task's session, the grace period, then SIGKILL to all of it.

    \b
    REFS are ids, unique id prefixes, globs ('web.*'), paths (/hpc/tasks/123), or '-' to
    read ids from stdin, one per line:
      dshell ps -q --state RUNNING -l team=a | dshell kill --yes -
    Killing more than one task asks first on a terminal; elsewhere it needs --yes.
    """
    from ..core import tasks
    from ..core.refs import expand_stdin, resolve_tasks

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    signum = parse_signal(sig)
    ids = expand_stdin(session, refs)
    if not ids:
        raise UsageError("no task ids given (stdin was empty)")
    trefs = resolve_tasks(session, ids, finished=False)
    if scale:
        from ..core import services

        services.kill_and_scale(session, trefs)
        return
    if len(trefs) > 1:
        confirm(session, f"kill {len(trefs)} tasks?", yes)
    killed = tasks.kill(trefs, signal=signum, grace=grace)
    if output or quiet:
        from ..render.views import TASK

        out.listing(killed, TASK, fmt)
    else:
        verb = f"signalled ({sig})" if signum else "killed"
        for t in killed:
            out.info(f"{verb} {t.mount}/tasks/{t.id} ({t.state})")
