"""Network helpers shared by backends (SSH today). Heavy libraries are imported lazily.

The small result types live here so that code that only *might* go remote (a backend's
local runner) does not import :mod:`dshell.net.ssh`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Completed:
    """A finished command: status and both outputs."""

    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass
class FileStat:
    """Size and modification time (epoch seconds) of a file."""

    size: int
    mtime: float
