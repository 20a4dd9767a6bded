"""Shell completion: scripts for bash, zsh and fish, and the live ``__complete`` entry.

The scripts are generated from the command tree (:mod:`.tree`): verbs, sub-verbs, options
and choices are embedded, so completing them is instant. Live values — task ids, services,
agents, mount targets, backend types and namespace paths — are asked of dshell itself::

    dshell __complete KIND PREFIX      # one candidate per line; KIND in tree.LIVE_KINDS

which answers within about a second (a slow or dead cluster just contributes nothing) and
never prints a traceback. The committed copies under ``completions/`` are regenerated with
``python -m dshell.completion --write completions/`` (a test fails when they are stale).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import FileEntry
    from ..session import Session
    from .live import Candidate, Snapshot

SHELLS = ("bash", "zsh", "fish")
#: The file each shell's script is committed as, under completions/.
FILES = {"bash": "dshell.bash", "zsh": "_dshell", "fish": "dshell.fish"}
#: How long ``__complete`` waits for the clusters.
TIMEOUT = 1.0


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    from .tree import build_tree

    tree = build_tree()
    if shell == "bash":
        from .posix import bash

        return bash(tree)
    if shell == "zsh":
        from .posix import zsh

        return zsh(tree)
    if shell == "fish":
        from .fish import fish

        return fish(tree)
    raise ValueError(f"unknown shell {shell!r} (choose from: {', '.join(SHELLS)})")


def write(directory: str | Path) -> list[Path]:
    """Write every shell's script into ``directory``; return the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in FILES.items():
        path = out / name
        path.write_text(script(shell), encoding="utf-8")
        written.append(path)
    return written


# ---- dshell __complete KIND PREFIX -------------------------------------------------------------


def complete_main(args: list[str]) -> int:
    """``dshell __complete KIND PREFIX``: print candidates, one per line. Never a traceback."""
    if not args:
        sys.stderr.write("usage: dshell __complete KIND [PREFIX]\n")
        return 2
    try:
        from ..session import Session

        session = Session()
        values = [value for value, _ in answer(session, args[0], args[1] if len(args) > 1 else "")]
        sys.stdout.write("".join(v + "\n" for v in values))
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - completing must never print a traceback into a shell
        return 1
    return 0


def answer(session: Session, kind: str, prefix: str, timeout: float = TIMEOUT) -> list[Candidate]:
    """Candidates of a live ``kind`` for ``prefix``, asking only the mounts that matter."""
    from .live import candidates

    snap = snapshot_for(session, kind, prefix, timeout)
    return candidates(kind, prefix, snap, session.cwd, lambda p: _list_dir(session, p, timeout))


def snapshot_for(session: Session, kind: str, prefix: str, timeout: float) -> Snapshot:
    """A snapshot holding just what ``kind``/``prefix`` needs (one mount for a path)."""
    from ..namespace import normpath, resolve
    from .live import Snapshot, gather, scope

    mounts = session.mounts()
    snap = Snapshot(mounts=tuple(mounts))
    if kind == "backend":
        return Snapshot(mounts=snap.mounts, backends=tuple(session.registry.names()))
    if kind == "ref":
        kind = "path" if "/" in prefix else "task"
    if kind in ("task", "service", "agent"):
        wanted = scope(snap, session.cwd)
    elif kind == "path":
        where = normpath(prefix[: prefix.rfind("/") + 1] or ".", session.cwd)
        res = resolve(mounts, where)
        wanted = [res.mount] if res.mount is not None and res.parts[:1] else []
    else:
        wanted = []
    if not wanted:
        return snap
    return Snapshot(mounts=snap.mounts, ids=gather(session.registry, wanted, timeout))


def _list_dir(session: Session, path: str, timeout: float) -> list[FileEntry] | None:
    from ..core import fs
    from ..errors import DshellError
    from .live import bounded

    def ls() -> list[FileEntry] | None:
        try:
            return list(fs.ls(session, path))
        except DshellError:
            return None

    return bounded(ls, timeout)
