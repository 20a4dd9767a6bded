"""The interactive shell (prompt_toolkit), imported only when a REPL starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..session import Session


def run_repl(session: Session) -> int:
    from .app import Repl

    return Repl(session).run()
