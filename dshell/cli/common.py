"""Small helpers every command module uses (session access, output, confirmation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..render import Format, Output
from ._click import click

if TYPE_CHECKING:
    from ..session import Session


def session_of(ctx: click.Context) -> Session:
    obj = ctx.find_root().obj
    if obj is None:  # invoked through click directly (e.g. click's own test runner)
        from ..session import Session

        obj = ctx.find_root().obj = Session()
    return obj


def out_fmt(
    session: Session, output: str | None, quiet: bool = False, raw: bool = False
) -> tuple[Output, Format]:
    return Output(session.env), Format.parse(output, quiet, raw)


def confirm(session: Session, question: str, yes: bool) -> None:
    """Ask on a TTY; off a TTY the caller must pass --yes (never prompt a script)."""
    if yes:
        return
    if not (session.env.stdin_isatty and session.env.stderr_isatty) or session.stdin_is_script:
        raise UsageError(f"{question} — not a terminal, so pass --yes to confirm")
    if not click.confirm(question, default=False, err=True):
        raise UsageError("not confirmed; nothing done")
