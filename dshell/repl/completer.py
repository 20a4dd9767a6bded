"""The REPL's completer: verbs, sub-verbs, options and choices from the command tree; ids,
services, agents and paths from the refresher's last snapshot (never a live call, except
listing a task's sandbox, which is bounded by a short timeout)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent, Completer, Completion

from ..completion.live import bounded, candidates
from ..completion.tree import LIVE_KINDS, Node, Want, analyse, build_tree, static_candidates
from ..lexer import partial, quote

if TYPE_CHECKING:
    from prompt_toolkit.document import Document

    from ..completion.live import Candidate, Snapshot
    from ..model import FileEntry
    from ..session import Session

#: How long a Tab may wait for a sandbox listing.
LIST_TIMEOUT = 0.5


class TreeCache:
    """The command-tree spec, built once (it imports every verb module) from any thread."""

    def __init__(self, build: Callable[[], Node] = build_tree) -> None:
        self._build = build
        self._tree: Node | None = None
        self._lock = threading.Lock()

    def get(self) -> Node:
        with self._lock:
            if self._tree is None:
                self._tree = self._build()
            return self._tree


class DshellCompleter(Completer):
    """Completes the command under the cursor of a (possibly unfinished) line."""

    def __init__(
        self,
        session: Session,
        snapshot: Callable[[], Snapshot],
        tree: TreeCache,
        builtins: Callable[[], list[tuple[str, str]]] = list,
    ) -> None:
        self.session = session
        self.snapshot = snapshot
        self.tree = tree
        self.builtins = builtins  # (name, help) of REPL-only commands
        self._lister: Session | None = None
        self._listing = threading.Lock()

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        typed = partial(text)
        if typed is None or typed.system:
            return
        words = list(typed.words)
        if words[:1] == ["dshell"]:
            words = words[1:]
        elif typed.in_pipeline and words and words[0] not in self._verb_names():
            return  # a system command in a pipeline (`ps | grep …`): not ours to complete
        want = analyse(self.tree.get(), words, typed.current)
        start = typed.start - len(text)
        for value, meta in self.values(want, at_root=not words):
            if not value.startswith(want.prefix):
                continue
            yield Completion(
                _render(want.inline + value, typed.quote),
                start_position=start,
                display=value,
                display_meta=meta,
            )

    def values(self, want: Want, at_root: bool) -> list[Candidate]:
        """(value, description) for the word being typed."""
        kind, prefix = want.kind, want.prefix
        verbs = [(s.name, s.help) for s in self.tree.get().subs]
        if kind == "sub" and at_root:
            names = {name for name, _ in verbs}
            return verbs + [b for b in self.builtins() if b[0] not in names]
        if kind in LIVE_KINDS:
            return candidates(kind, prefix, self.snapshot(), self.session.cwd, self._list_dir)
        return static_candidates(want, verbs)

    def _verb_names(self) -> set[str]:
        return {s.name for s in self.tree.get().subs} | {n for n, _ in self.builtins()}

    def _list_dir(self, path: str) -> list[FileEntry] | None:
        """A task's sandbox, through a private session, at most one listing at a time."""
        if not self._listing.acquire(blocking=False):
            return None  # an earlier listing still hangs: offer nothing rather than wait
        from ..session import Env, Session

        if self._lister is None:
            self._lister = Session(
                env=Env(environ=self.session.env.environ), table=self.session.table
            )
        lister = self._lister
        lister.invalidate_mounts()

        def ls() -> list[FileEntry] | None:
            from ..core import fs

            try:
                return list(fs.ls(lister, path))
            finally:
                self._listing.release()

        return bounded(ls, LIST_TIMEOUT)


def _render(value: str, open_quote: str | None) -> str:
    """The text that replaces the word: quoted as needed, in the quote the user opened."""
    if open_quote == "'":
        return "'" + value.replace("'", "'\\''") + ("'" if not value.endswith("/") else "")
    if open_quote == '"':
        body = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        return '"' + body + ('"' if not value.endswith("/") else "")
    return quote(value) if value else value
