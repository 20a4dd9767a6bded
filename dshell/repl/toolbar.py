"""The bottom toolbar: mounts, the current path, and how fresh the completion ids are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import DshellError
from .keys import HINTS

if TYPE_CHECKING:
    from .app import Repl

Fragments = list[tuple[str, str]]


def ago(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    return f"{int(seconds // 3600)}h ago"


def toolbar_fragments(repl: Repl, now: float | None = None) -> Fragments:
    """The toolbar's (style, text) pairs, e.g. ``/local /hpc │ /hpc │ ids 3s ago │ /hpc: slow``."""
    status = repl.refresher.status()
    try:
        # The session's table (re-read before each line), not the refresher's older copy.
        mounts = " ".join(m.target for m in repl.session.mounts()) or "no mounts"
    except DshellError:
        mounts = "mount table unreadable"
    out: Fragments = [("class:bottom-toolbar", f" {mounts} │ {repl.session.cwd} │ ")]
    if status.refreshing:
        out.append(("class:bottom-toolbar", "refreshing…"))
    elif status.last is not None:
        out.append(("class:bottom-toolbar", "ids " + ago((now or time.time()) - status.last)))
    else:
        out.append(("class:bottom-toolbar", "ids pending"))
    for target, problem in sorted(status.problems.items()):
        out.append(("class:bottom-toolbar.warn", f" │ {target}: {problem}"))
    out.append(("class:bottom-toolbar.key", f"  {HINTS} "))
    return out


def create_toolbar(repl: Repl) -> Callable[[], Fragments]:
    return lambda: toolbar_fragments(repl)
