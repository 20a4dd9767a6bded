"""ls, cd, pwd, cat, tail: walk the namespace and task sandboxes."""

from __future__ import annotations

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


@click.command()
@click.argument("path", required=False)
@output_options()
@click.pass_context
def ls(ctx: click.Context, path: str | None, output: str | None, quiet: bool, raw: bool) -> None:
    """List a namespace directory (/, a mount, its tasks, agents, svc, vol, fw) or a task's
    sandbox (/local/tasks/ID)."""
    from ..core import fs
    from ..render.views import FILE

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    out.listing(fs.ls(session, path), FILE, fmt)


@click.command()
@click.argument("path", required=False, default="/")
@click.pass_context
def cd(ctx: click.Context, path: str) -> None:
    """Change the current namespace path (the REPL and runbooks keep it between lines)."""
    from ..core import fs

    session = session_of(ctx)
    session.cwd = fs.check_dir(session, path)


@click.command()
@click.pass_context
def pwd(ctx: click.Context) -> None:
    """Print the current namespace path."""
    session = session_of(ctx)
    out, _ = out_fmt(session, None)
    out.write(session.cwd + "\n")
    out.flush()


def _resolve_file(session, target: str, stderr: bool) -> str:  # type: ignore[no-untyped-def]
    """A bare task reference means that task's stdout (or stderr)."""
    if "/" in target:
        return target
    from ..core.refs import resolve_tasks

    tref = resolve_tasks(session, [target], one=True)[0]
    return f"{tref.mount.target}/tasks/{tref.task.id}/{'stderr' if stderr else 'stdout'}"


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--stderr", is_flag=True, help="For a bare task id: its stderr instead of stdout.")
@click.pass_context
def cat(ctx: click.Context, paths: tuple[str, ...], stderr: bool) -> None:
    """Print files of task sandboxes (`cat /local/tasks/ID/stdout`, or just `cat ID`).

    An agent or service path (`cat /local/agents/ID`) prints that object as JSON.
    """
    from ..core import fs
    from ..render import Format

    session = session_of(ctx)
    out, _ = out_fmt(session, None)
    for p in paths:
        obj = fs.describe(session, p) if "/" in p else None
        if obj is not None:
            out.document(obj, Format("json"))
            continue
        for data in fs.read(session, _resolve_file(session, p, stderr)):
            out.raw_bytes(data)


@click.command()
@click.argument("target")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing as the file grows, until the task ends."
)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Lines to show first.",
)
@click.option("--stderr", is_flag=True, help="For a bare task id: its stderr instead of stdout.")
@click.pass_context
def tail(ctx: click.Context, target: str, follow: bool, lines: int, stderr: bool) -> None:
    """Print the end of a task's output (a sandbox path or a task id); -f follows it."""
    from ..core import fs

    session = session_of(ctx)
    out, _ = out_fmt(session, None)
    path = _resolve_file(session, target, stderr)
    data = b"".join(fs.read(session, path))
    keep = data.splitlines(keepends=True)[-lines:] if lines else []
    out.raw_bytes(b"".join(keep))
    if follow:
        for chunk in fs.read(session, path, offset=len(data), follow=True):
            out.raw_bytes(chunk)
