"""The scripted listing without the command tree: ``dshell ps [PATH] [-a] [-q] [-o FMT]``.

``dshell ps -o tsv`` in a loop is what scripts and monitoring do most, and importing click
costs more than everything else dshell does for it (about 25 ms of the ~45 ms a command
spends in dshell's own code). This module answers exactly that shape of command line without
importing click: the same core call and renderer as the ``ps`` verb, the same error
reporting. Any other argument (``--help``, ``--state``, ``-w``, combined short flags, a
typo…) returns None and the full command tree handles the line, so the tree stays the one
definition of ``ps``; ``tests/test_fastpath.py`` parses a corpus of command lines both ways
and checks they agree, so a change to ``ps``'s options cannot silently diverge.
``DSHELL_NO_FASTPATH=1`` turns it off.

Early listings: before the session exists (before msgspec and the backends are
imported), :func:`start_listings` reads the early start's plan (:mod:`dshell.prestart`, made
from the mount table by :mod:`dshell.mountrows` when the table changed) and lets each listed
mount's backend package start its listing command (the listing ``squeue``: "Early
listings" in :mod:`dshell.backend`), so that the command runs while dshell finishes starting.
The session hands each one to its mount's backend; anything unused is closed with the session.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~10 ms to import, before the early start; see prestart
if TYPE_CHECKING:
    from typing import Any

    from .backend import Prefetched
    from .plugins import Registry
    from .prestart import Key, Planned
    from .session import Session

_FLAGS = {"-a": "all_", "--all": "all_", "-q": "quiet", "--quiet": "quiet"}
_OUTPUT = ("-o", "--output")


def parse_ps(args: list[str]) -> dict[str, Any] | None:
    """``ps``'s parameters for the simple shape, or None for anything else."""
    params: dict[str, Any] = {"path": None, "all_": False, "quiet": False, "output": None}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _FLAGS:
            params[_FLAGS[arg]] = True
        elif arg in _OUTPUT:
            if i + 1 >= len(args):
                return None
            params["output"] = args[i + 1]
            i += 1
        elif arg.startswith("--output="):
            params["output"] = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            params["output"] = arg[2:]
        elif arg.startswith("-") or params["path"] is not None:
            return None
        else:
            params["path"] = arg
        i += 1
    return params


def start_listings(args: list[str]) -> tuple[Registry | None, dict[str, Prefetched]] | None:
    """For a ``ps`` line of the simple shape: the backend registry if it had to be made here,
    and the listings started early by mount target; None when there is nothing to start (the
    line then runs as always). The plan comes from :mod:`dshell.prestart` when it matches."""
    if args[:1] != ["ps"] or os.environ.get("DSHELL_NO_FASTPATH"):
        return None
    params = parse_ps(args[1:])
    if params is None:
        return None
    from . import prestart

    current = prestart.key()
    if current is None:
        return None  # no table: only /local
    registry = None
    plan = prestart.load(current)
    if plan is None:
        made = _plan(current)
        if made is None:
            return None
        plan, registry = made
    started = prestart.start(plan, params["path"] or ".")
    if not started and registry is None:
        return None
    return registry, started


def _plan(current: Key) -> tuple[list[Planned], Registry] | None:
    """The early start's plan made from the table ``current`` holds and the installed backends,
    and saved; None when the table cannot be read or the backends cannot be listed (the
    session says why)."""
    from . import prestart
    from .errors import DshellError
    from .mountrows import read_rows
    from .plugins import Registry

    try:
        rows = read_rows(prestart.table(current).decode("utf-8"))
    except UnicodeDecodeError:
        return None
    if rows is None:
        return None  # not TOML: the session reports it
    try:
        registry = Registry.discover(dict(os.environ))
    except DshellError:
        return None  # a bad DSHELL_BACKENDS: reported by the session's own registry
    plan = [prestart.Planned(*row, registry.package(row.type)) for row in rows]
    prestart.save(current, plan)
    return plan, registry


def try_ps(session: Session, args: list[str]) -> int | None:
    """Run ``ps`` for the simple shape and return its status; None when it does not apply."""
    if args[:1] != ["ps"] or os.environ.get("DSHELL_NO_FASTPATH"):
        return None
    params = parse_ps(args[1:])
    if params is None:
        return None
    from .backend import TaskQuery
    from .errors import DshellError, report, report_os_error
    from .render import Format, Output

    out = Output(session.env)
    try:
        from .core import tasks
        from .render.views import TASK

        fmt = Format.parse(params["output"], params["quiet"], False)
        result = tasks.ps(session, params["path"], TaskQuery(all=params["all_"]), None)
        out.listing(result.rows, TASK, fmt)
        result.finish(out)
    except DshellError as exc:
        return report(session, out, exc)
    except BrokenPipeError:
        raise
    except OSError as exc:  # e.g. ENOSPC writing the listing: reported as the tree does
        return report_os_error(session, out, exc)
    return 0
