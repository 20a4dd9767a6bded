"""top: a live view of agents and tasks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options

if TYPE_CHECKING:
    from ..session import Session


def snapshot(session: Session, path: str | None) -> dict[str, Any]:
    from ..core import tasks

    agents = tasks.nodes(session, path)
    stats = tasks.stats(session, path)
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "agents": agents,
        "tasks": stats,
    }


def _print(session: Session, snap: dict[str, Any], fmt: Any) -> None:
    from ..model import to_builtins
    from ..render import Format, Output
    from ..render.views import STATS

    out = Output(session.env)
    if fmt.name in ("json", "jsonl", "yaml", "jsonpath"):
        doc = {
            "apiVersion": "dshell/v1",
            "kind": "TopSnapshot",
            "at": snap["at"],
            "agents": to_builtins(snap["agents"].rows),
            "tasks": to_builtins(snap["tasks"].rows),
        }
        if fmt.name == "jsonl":
            import json

            out.write(json.dumps(doc) + "\n")
            out.flush()
        else:
            out.document(doc, fmt)
    else:
        out.listing(snap["tasks"].rows, STATS, fmt if fmt.name else Format("tsv"))


def _live(session: Session, path: str | None, delay: float, count: int | None) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from ..render.table import console
    from .top_view import agents_table, tasks_table

    con = console(session.env)
    shown = 0
    with Live(console=con, auto_refresh=False, screen=False) as live:
        while count is None or shown < count:
            snap = snapshot(session, path)
            title = Text(f"dshell top — {session.abspath(path)} — {snap['at']}  (Ctrl-C quits)")
            live.update(
                Group(title, agents_table(snap["agents"].rows), tasks_table(snap["tasks"].rows)),
                refresh=True,
            )
            shown += 1
            if count is None or shown < count:
                time.sleep(delay)


@click.command()
@click.argument("path", required=False)
@click.option(
    "-n",
    "--iterations",
    type=click.IntRange(min=1),
    help="Stop after N updates (-n 1: one snapshot).",
)
@click.option(
    "-d", "--delay", type=DURATION, default=2.0, show_default=True, help="Time between updates."
)
@output_options()
@click.pass_context
def top(
    ctx: click.Context,
    path: str | None,
    iterations: int | None,
    delay: float,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Live view of agents and tasks with CPU %, RSS and allocated vs used.

    On a TTY it refreshes every --delay until Ctrl-C; `top -n 1 -o tsv|json` prints one
    snapshot for scripts (piped output is always snapshots).
    """
    session = session_of(ctx)
    _out, fmt = out_fmt(session, output, quiet, raw)
    if session.env.stdout_isatty and fmt.name in (None, "table", "wide") and iterations != 1:
        try:
            _live(session, path, delay, iterations)
        except KeyboardInterrupt:
            return
        return
    for i in range(iterations or 1):
        if i:
            time.sleep(delay)
        snap = snapshot(session, path)
        _print(session, snap, fmt)
    snap["agents"].finish(_out)
    snap["tasks"].finish(_out)
