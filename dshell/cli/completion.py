"""completion: print a completion script for bash, zsh or fish."""

from __future__ import annotations

from ._click import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print a completion script: `source <(dshell completion bash)`.

    The scripts are generated from the command tree (the files under completions/ are the
    same text); live ids, paths and service names are completed by dshell itself.
    """
    from ..completion import script
    from .common import session_of

    session = session_of(ctx)
    session.env.stdout.write(script(shell))
