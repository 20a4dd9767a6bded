"""Running one command line: `;` sequences and `|` pipelines (placeholder, see lexer)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session


def run_line(session: Session, line: str) -> int:
    from .cli.main import invoke

    status = 0
    for part in line.split(";"):
        argv = shlex.split(part, comments=True)
        if argv:
            status = invoke(session, argv)
    return status
