"""The rich tables of the live `top` view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _bar(used: float, total: float) -> str:
    if total <= 0:
        return "-"
    frac = max(0.0, min(1.0, used / total))
    n = round(frac * 10)
    return "█" * n + "·" * (10 - n) + f" {frac * 100:3.0f}%"


def agents_table(agents: Sequence[Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="agents", title_justify="left", expand=False)
    heads = ("MOUNT", "AGENT", "STATE", "CPU alloc", "MEM alloc", "CPU used", "MEM used", "TASKS")
    reserving = any(a.reserved.cpus or a.reserved.mem for a in agents)
    disking = any(a.allocated.disk for a in agents)  # e.g. persistent volumes
    for h in (*heads, "CPU resv") if reserving else heads:  # reservations: when there are some
        table.add_column(h)
    if disking:
        table.add_column("DISK alloc")
    for a in agents:
        row: list[Any] = [
            Text(a.mount),
            Text(a.id),
            Text(a.state),
            _bar(a.allocated.cpus, a.total.cpus),
            _bar(a.allocated.mem, a.total.mem),
            _bar(a.used.cpus, a.total.cpus),
            _bar(a.used.mem, a.total.mem),
            str(a.tasks),
        ]
        if reserving:
            row.append(_bar(a.reserved.cpus, a.total.cpus))
        if disking:
            row.append(_bar(a.allocated.disk, a.total.disk))
        table.add_row(*row)
    return table


def tasks_table(stats: Sequence[Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="tasks", title_justify="left")
    for h in ("MOUNT", "TASK", "AGENT", "CPU%", "RSS MiB", "MEM alloc", "PROCS"):
        table.add_column(
            h, justify="right" if h in ("CPU%", "RSS MiB", "MEM alloc", "PROCS") else "left"
        )
    for s in stats[:200]:
        table.add_row(
            Text(s.mount),
            Text(s.task_id),
            Text(s.agent_id or "-"),
            f"{s.cpu_percent:.1f}",
            f"{s.rss:.1f}",
            f"{s.allocated.mem:g}",
            str(s.processes),
        )
    return table
