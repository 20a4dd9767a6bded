"""Runbooks: files of dshell commands (`dshell FILE`, `dshell -c`, lines on stdin).

Rules: one command line per line (`;` and `|` work as in the REPL); blank lines and lines
starting with `#` (a `#!/usr/bin/env dshell` shebang too) are skipped; a line ending in `\\`
continues on the next. The run stops at the first failing command — printing the file name,
line number, command line and exit status — and exits with that status; in `a; b` a failing
`a` stops before `b`, as with `sh -e`. `set +e` keeps going after failures, `set -e` restores
stopping (either may stand anywhere a command can, `set +e; cmd` too).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

from .errors import ExitCode

if TYPE_CHECKING:
    from .session import Session


def logical_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(first line number, text) with backslash continuations joined."""
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if not buf:
            start = no
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        yield start, " ".join(part.strip() for part in buf).strip()
        buf = []
    if buf:
        yield start, " ".join(part.strip() for part in buf).strip()


def run_lines(session: Session, lines: Iterable[str], source: str) -> int:
    from .lines import run_line
    from .render import Output

    mode = {"errexit": True}

    def set_(child: Session, argv: list[str]) -> int:
        """``set -e`` / ``set +e`` (the only options a runbook has)."""
        flags = argv[1:]
        if not flags or any(f not in ("-e", "+e") for f in flags):
            Output(child.env).error(f"set: {' '.join(flags) or '(nothing)'}: use set -e or set +e")
            return int(ExitCode.USAGE)
        mode["errexit"] = flags[-1] == "-e"
        return 0

    status = 0
    for no, text in logical_lines(lines):
        if not text or text.startswith("#"):
            continue
        status = run_line(session, text, builtins={"set": set_}, errexit=lambda: mode["errexit"])
        if status != 0 and mode["errexit"]:
            name = ExitCode(status).name if status in ExitCode._value2member_map_ else "task status"
            Output(session.env).error(f"{source}:{no}: `{text}` failed with exit {status} ({name})")
            return status
    return status


def run_text(session: Session, text: str, source: str = "-c") -> int:
    return run_lines(session, text.splitlines() or [""], source)


def run_file(session: Session, path: str) -> int:
    from .errors import ConfigError
    from .render import Output

    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        Output(session.env).error(ConfigError(f"{path}: cannot read runbook: {exc}").message)
        return int(ExitCode.USAGE)
    return run_lines(session, lines, path)


def run_stream(session: Session, stream: IO[str], source: str = "<stdin>") -> int:
    return run_lines(session, stream, source)
