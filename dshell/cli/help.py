"""help: list verbs, or show one verb's help."""

from __future__ import annotations

from ._click import click
from .common import session_of


@click.command("help")
@click.argument("words", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, words: tuple[str, ...]) -> None:
    """List verbs, or show the help of one (`help svc deploy`)."""
    from .main import root

    session = session_of(ctx)
    cmd: click.Command = root
    parent = click.Context(root, info_name="dshell", obj=session)
    for w in words:
        if not isinstance(cmd, click.Group):
            break
        sub = cmd.get_command(parent, w)
        if sub is None:
            raise click.UsageError(f"no such verb: {' '.join(words)}")
        parent = click.Context(sub, info_name=w, parent=parent, obj=session)
        cmd = sub
    session.env.stdout.write(cmd.get_help(parent) + "\n")
