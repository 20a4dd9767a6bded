"""The REPL's history file: ``state_dir()/history``, shared by every REPL of the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit.history import History


def history_path() -> str:
    from ..paths import state_dir

    return str(state_dir() / "history")


def open_history() -> tuple[History, str | None]:
    """A FileHistory, or an in-memory one and the reason when the file cannot be used."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = history_path()
    try:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch(exist_ok=True)
    except OSError as exc:
        return InMemoryHistory(), f"history is not saved: {path}: {exc.strerror or exc}"
    return FileHistory(path), None


def lines(history: History) -> list[str]:
    """Every stored entry, oldest first (re-read from the file: other REPLs append too)."""
    return list(reversed(list(history.load_history_strings())))
