"""The session: injectable environment (streams, TTY, colour), namespace state, backends.

One ``Session`` lives for a CLI invocation, a runbook, or a whole REPL; tests build their
own with fake streams (no module-level state anywhere).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from .namespace import MountTable, normpath

if TYPE_CHECKING:
    from .backend import Backend, Mount, Prefetched
    from .plugins import Registry


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, AttributeError):
        return False


@dataclass
class Env:
    """Where output goes and what the terminal can do (httpie's Environment, in small)."""

    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    stdin_isatty: bool | None = None
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None
    color: str = "auto"  # auto | always | never (from --color)
    width: int | None = None  # fixed table width (golden tests); None: the terminal's

    def __post_init__(self) -> None:
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)

    def use_color(self, tty: bool | None) -> bool:
        """--color wins; then NO_COLOR, FORCE_COLOR/CLICOLOR_FORCE, TERM=dumb; then the TTY."""
        if self.color == "always":
            return True
        if self.color == "never" or self.environ.get("NO_COLOR"):
            return False
        if self.environ.get("FORCE_COLOR") or self.environ.get("CLICOLOR_FORCE") not in (None, "0"):
            return True
        if self.environ.get("TERM") == "dumb":
            return False
        return bool(tty)


@dataclass
class Session:
    env: Env = field(default_factory=Env)
    table: MountTable = field(default_factory=MountTable)
    cwd: str = "/"
    debug: bool = False
    interactive: bool = False  # a REPL: prompts allowed when stdin is a TTY
    stdin_is_script: bool = False  # stdin carries the runbook itself (so `-` cannot read ids)
    attached: bool = False  # inside an attached run/exec: dshell's own failures exit 125
    _registry: Registry | None = None
    _mounts: list[Mount] | None = None
    #: framework mounts as opened (row, resolved), see dshell.frameworks.resolve
    fw_mounts: dict[str, tuple[Mount, Mount]] = field(default_factory=dict)
    #: listings started early by the fast path, by mount target: handed to the mount's backend
    #: when it is first used (dshell.backend, "Early listings"), closed at the end otherwise
    prefetched: dict[str, Prefetched] = field(default_factory=dict)

    # ---- backends ----------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from .plugins import Registry

            self._registry = Registry.discover(self.env.environ)
        return self._registry

    def backend(self, mount: Mount) -> Backend:
        target = mount.target
        if "fw" in mount.options:  # a framework's row: its address comes from its host
            from .frameworks import resolve

            mount = resolve(self, mount)
        backend = self.registry.backend_for(mount)
        started = self.prefetched.pop(target, None)  # one that is never adopted: see close()
        if started is not None:
            backend.adopt_listing(started)
        return backend

    # ---- namespace ---------------------------------------------------------------------------

    def mounts(self, refresh: bool = False) -> list[Mount]:
        """The mount table, read once per command (a REPL refreshes it per line)."""
        if self._mounts is None or refresh:
            self._mounts = self.table.load()
        return self._mounts

    def invalidate_mounts(self) -> None:
        self._mounts = None
        self.fw_mounts.clear()

    def abspath(self, path: str | None) -> str:
        return normpath(path or ".", self.cwd)

    def close(self) -> None:
        while self.prefetched:
            self.prefetched.popitem()[1].close()
        if self._registry is not None:
            self._registry.close()
