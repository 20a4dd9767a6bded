"""Key bindings of the REPL beyond prompt_toolkit's emacs defaults (Ctrl-R searches history,
Tab completes, Ctrl-C clears the line, Ctrl-D on an empty line leaves)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    from .app import Repl

#: Shown in the toolbar.
HINTS = "F5 refresh ids · Ctrl-R search · Ctrl-D exit"


def repl_bindings(repl: Repl) -> KeyBindings:
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("f5")
    def _refresh(event: KeyPressEvent) -> None:
        """Fetch ids for completion now."""
        repl.refresher.request()

    @kb.add("c-space")
    def _complete(event: KeyPressEvent) -> None:
        """Open the completion menu (like Tab, without inserting a tab when there is none)."""
        buff = event.app.current_buffer
        if buff.complete_state:
            buff.complete_next()
        else:
            buff.start_completion(select_first=False)

    return kb
