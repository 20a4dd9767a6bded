"""Completion scripts generated from the command tree (placeholder)."""

from __future__ import annotations


def script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    from .cli.main import root

    cls = get_completion_class(shell)
    assert cls is not None
    return cls(root, {}, "dshell", "_DSHELL_COMPLETE").source()
