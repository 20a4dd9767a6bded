"""Rich tables for a TTY (imported only when a table is actually drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..session import Env
    from .views import View


def console(env: Env, *, stderr: bool = False) -> Console:
    """A rich Console on our streams; markup and highlighting off so names print verbatim."""
    from rich.console import Console

    stream = env.stderr if stderr else env.stdout
    tty = env.stderr_isatty if stderr else env.stdout_isatty
    color = env.use_color(tty)
    return Console(
        file=stream,
        force_terminal=bool(tty) or color,
        no_color=not color,
        color_system="auto" if color else None,
        markup=False,
        highlight=False,
        emoji=False,
        width=env.width,
        soft_wrap=False,
    )


def rich_table(env: Env, rows: Sequence[Any], view: View, *, wide: bool) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cols = view.visible(wide)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for c in cols:
        table.add_column(
            c.header,
            justify="right" if c.align == "right" else "left",
            overflow="fold" if wide else "ellipsis",
            no_wrap=not wide,
        )
    for r in rows:
        # Text(), never markup strings: a name like "web[1]" must print verbatim.
        table.add_row(*(Text(c.get(r, True)) for c in cols))
    console(env).print(table)
