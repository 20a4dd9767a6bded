"""The interactive shell: a prompt_toolkit loop around :func:`dshell.lines.run_line`.

Anatomy as in pgcli: the completer (:mod:`.completer`) reads a snapshot that a background
refresher (:mod:`.refresher`) keeps fresh; key bindings, toolbar, style and history live in
their own small modules; REPL-only commands are a registry (:mod:`.commands`).

Behaviour: the prompt shows the current path (``dshell:/local> ``). Ctrl-C at the prompt
clears the line; Ctrl-C while a command runs cancels that command (status 130), not the
shell. Ctrl-D or ``exit`` leaves with status 0, ``exit N`` with N. The mount table is re-read
before every line, so a ``mount`` made in another shell shows up.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import DshellError, ExitCode
from .commands import ExitRepl, build
from .completer import TreeCache
from .refresher import Refresher

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import History

    from ..session import Session

Fragments = list[tuple[str, str]]


class Repl:
    """One interactive session over ``session`` (its cwd and mounts persist across lines)."""

    def __init__(
        self,
        session: Session,
        *,
        refresh_timeout: float = 2.0,
        refresh_interval: float = 30.0,
        redraw_interval: float | None = 5.0,
    ) -> None:
        self.session = session
        session.interactive = True
        self.commands = build(self)
        self.tree = TreeCache()
        self.refresher = Refresher(
            session.table,
            session.env.environ,
            timeout=refresh_timeout,
            interval=refresh_interval,
            on_change=self._invalidate,
        )
        self.redraw_interval = redraw_interval
        self.last_status = 0
        self.prompt: PromptSession[str] | None = None
        self.history: History | None = None

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        """Read, run, repeat; return the exit status of the shell."""
        prompt = self.make_prompt()
        self.session.env.stderr.write(banner())
        self.refresher.start()
        # Build the command-tree spec off the prompt thread, so the first Tab is instant.
        threading.Thread(target=self._warm_up, name="dshell-tree", daemon=True).start()
        try:
            while True:
                try:
                    text = prompt.prompt(self.message)
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt: a fresh line
                except EOFError:
                    return int(ExitCode.OK)  # Ctrl-D
                try:
                    self.execute(text)
                except ExitRepl as exc:
                    return exc.status
        finally:
            self.refresher.stop()

    def _warm_up(self) -> None:
        try:
            self.tree.get()
        except ImportError:
            pass  # a broken verb module is reported when that verb runs, not from a thread

    def execute(self, text: str) -> int:
        """Run one line as the REPL does (exceptions become statuses; ``exit`` propagates)."""
        from ..cli.main import internal_error
        from ..lines import run_line
        from ..render import Output

        if not text.strip():
            return self.last_status
        self.session.invalidate_mounts()  # another shell may have mounted something
        try:
            status = run_line(self.session, text, builtins=self.commands.builtins())
        except ExitRepl:
            raise
        except KeyboardInterrupt:
            Output(self.session.env).error("interrupted")
            status = int(ExitCode.INTERRUPTED)
        except DshellError as exc:
            Output(self.session.env).error(exc.message)
            status = int(exc.code)
        except Exception as exc:  # noqa: BLE001 - a boundary: report the bug, keep the shell
            status = internal_error(self.session, exc)
        finally:
            self.refresher.request()
        self._flush()
        self.last_status = status
        return status

    def _flush(self) -> None:
        try:
            self.session.env.stdout.flush()
        except (OSError, ValueError):
            pass

    # ---- prompt_toolkit ------------------------------------------------------------------------

    def message(self) -> Fragments:
        return [
            ("class:prompt", "dshell:"),
            ("class:prompt.path", self.session.cwd),
            ("class:prompt", "> "),
        ]

    def make_prompt(self) -> PromptSession[str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
        from prompt_toolkit.shortcuts import CompleteStyle

        from ..render import Output
        from .completer import DshellCompleter
        from .history import open_history
        from .keys import repl_bindings
        from .style import color_depth, make_style
        from .toolbar import create_toolbar

        self.history, warning = open_history()
        if warning:
            Output(self.session.env).warn(warning)
        completer = DshellCompleter(
            self.session,
            self.refresher.snapshot,
            self.tree,
            builtins=self.commands.rows,
        )
        self.prompt = PromptSession(
            history=self.history,
            completer=completer,
            complete_in_thread=True,
            complete_while_typing=False,
            complete_style=CompleteStyle.COLUMN,
            auto_suggest=AutoSuggestFromHistory(),
            key_bindings=repl_bindings(self),
            style=make_style(),
            include_default_pygments_style=False,
            color_depth=color_depth(self.session.env),
            bottom_toolbar=create_toolbar(self),
            refresh_interval=self.redraw_interval or 0,
            search_ignore_case=True,
        )
        return self.prompt

    def _invalidate(self) -> None:
        """Redraw the toolbar (called from the refresher's threads; invalidate is thread-safe)."""
        if self.prompt is not None:
            try:
                self.prompt.app.invalidate()
            except RuntimeError:  # the prompt's event loop ended between its check and ours
                pass

    def history_lines(self) -> list[str]:
        from .history import lines

        return lines(self.history) if self.history is not None else []


def banner() -> str:
    from .. import __version__

    return f"dshell {__version__}: `help` lists verbs, Tab completes, Ctrl-D leaves.\n"
