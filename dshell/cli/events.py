"""events: stream state changes."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from ..backend import Capability, require
from ..errors import DshellError
from ._click import click
from .common import out_fmt, session_of
from .options import output_options

if TYPE_CHECKING:
    from ..model import Event
    from ..render import Format
    from ..session import Session


def follow_events(
    session: Session,
    path: str | None,
    fmt: Format,
    *,
    since: int | None = None,
    follow: bool = True,
    tasks_only: bool = False,
) -> None:
    """Print events of every mount under ``path`` as they come (one thread per mount)."""
    from ..core.fanout import target_mounts
    from ..render import Format, Output
    from ..render.views import EVENT

    out = Output(session.env)
    mounts = target_mounts(session, path)
    inbox: queue.Queue[tuple[str, Event | DshellError | None]] = queue.Queue()

    def pump(mount) -> None:  # type: ignore[no-untyped-def]
        try:
            backend = session.backend(mount)
            require(backend, Capability.EVENTS, "events")
            for ev in backend.events(since=since, follow=follow):
                ev.mount = mount.target
                inbox.put((mount.target, ev))
        except DshellError as exc:
            inbox.put((mount.target, exc))
        inbox.put((mount.target, None))

    for m in mounts:
        threading.Thread(target=pump, args=(m,), daemon=True).start()
    name = fmt.name or ("table" if session.env.stdout_isatty else "jsonl")
    live = len(mounts)
    failed = []
    rowwise = name in ("table", "wide", "tsv")
    first = True
    while live:
        target, item = inbox.get()
        if item is None:
            live -= 1
        elif isinstance(item, DshellError):
            out.warn(f"{target}: {item.message}")
            failed.append(item)
        elif not tasks_only or item.task is not None:
            if rowwise:
                out.tsv([item], EVENT, wide=name == "wide", header=first)
                first = False
            else:
                out.document(item, Format("jsonl") if name in ("json", "jsonl") else fmt)
    if failed:
        from ..errors import PartialError

        if len(failed) == len(mounts):
            raise failed[0]
        raise PartialError("")


@click.command()
@click.argument("path", required=False)
@click.option("--since", type=int, help="Replay events after this sequence number first.")
@click.option("--no-follow", is_flag=True, help="Print the events so far and exit.")
@output_options()
@click.pass_context
def events(
    ctx: click.Context,
    path: str | None,
    since: int | None,
    no_follow: bool,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Stream state changes of every mount under PATH, each with its sequence number.

    Piped, one JSON object per line (jsonl); on a TTY, one row per event. Ctrl-C stops.
    """
    session = session_of(ctx)
    _out, fmt = out_fmt(session, output, quiet, raw)
    follow_events(session, path, fmt, since=since, follow=not no_follow)
