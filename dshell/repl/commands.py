"""REPL-only commands (``exit``, ``history``, ``refresh``, ``help``) in a small registry.

As in litecli's special commands, each command is registered with its usage and one line of
help, and the registry generates the help text, so the two cannot drift. They run through
:func:`dshell.lines.run_line` as builtins, so ``history | grep mount`` works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ExitCode

if TYPE_CHECKING:
    from ..lines import Builtin
    from ..session import Session
    from .app import Repl


class ExitRepl(Exception):
    """Raised by ``exit`` to leave the REPL with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class ReplCommand:
    name: str
    usage: str
    help: str
    run: Builtin


class Registry:
    """The REPL's own commands, by name (one registry per REPL, never module state)."""

    def __init__(self) -> None:
        self._commands: dict[str, ReplCommand] = {}

    def register(self, usage: str, help: str) -> Callable[[Builtin], Builtin]:
        """Decorator: ``@reg.register("exit [N]", "Leave the shell.")``."""

        def deco(fn: Builtin) -> Builtin:
            name = usage.split(maxsplit=1)[0]
            self._commands[name] = ReplCommand(name, usage, help, fn)
            return fn

        return deco

    def names(self) -> list[str]:
        return list(self._commands)

    def get(self, name: str) -> ReplCommand | None:
        return self._commands.get(name)

    def rows(self) -> list[tuple[str, str]]:
        """(name, help) of each command, for completion menus."""
        return [(c.name, c.help) for c in self._commands.values()]

    def builtins(self) -> dict[str, Builtin]:
        return {name: cmd.run for name, cmd in self._commands.items()}

    def help_text(self) -> str:
        width = max(len(c.usage) for c in self._commands.values())
        rows = [f"  {c.usage:<{width}}  {c.help}" for c in self._commands.values()]
        return "Shell commands (REPL only):\n" + "\n".join(rows) + "\n"


def _usage(session: Session, text: str) -> int:
    from ..render import Output

    Output(session.env).error(text)
    return int(ExitCode.USAGE)


def _int_arg(argv: list[str], default: int) -> int | None:
    if len(argv) < 2:
        return default
    try:
        return int(argv[1])
    except ValueError:
        return None


def build(repl: Repl) -> Registry:
    """The registry of one REPL."""
    reg = Registry()

    @reg.register("exit [N]", "Leave the shell with status N (default 0); Ctrl-D too.")
    def exit_(session: Session, argv: list[str]) -> int:
        status = _int_arg(argv, 0)
        if status is None or len(argv) > 2:
            return _usage(session, "usage: exit [N] (N a number)")
        raise ExitRepl(status)

    @reg.register("history [N]", "Show the last N lines typed (default 20); Ctrl-R searches.")
    def history(session: Session, argv: list[str]) -> int:
        count = _int_arg(argv, 20)
        if count is None or count < 0:
            return _usage(session, "usage: history [N] (N a number)")
        lines = repl.history_lines()
        shown = lines[-count:] if count else []
        start = len(lines) - len(shown) + 1
        for no, line in enumerate(shown, start):
            session.env.stdout.write(f"{no:5}  {line}\n")
        return 0

    @reg.register("refresh", "Fetch task ids, services and agents for completion now (F5).")
    def refresh(session: Session, argv: list[str]) -> int:
        repl.refresher.request()
        return 0

    @reg.register("help [VERB…]", "List verbs and these commands, or show the help of one.")
    def help_(session: Session, argv: list[str]) -> int:
        from ..cli.main import invoke

        own = reg.get(argv[1]) if len(argv) == 2 else None
        if own is not None:
            session.env.stdout.write(f"usage: {own.usage}\n\n  {own.help}\n")
            return 0
        status = invoke(session, ["help", *argv[1:]])
        if len(argv) == 1:
            session.env.stdout.write("\n" + reg.help_text())
        return status

    return reg
