"""The one place click is imported from.

The rest of the code says ``from dshell.cli._click import click`` so that where click comes
from (plain click today; typer's vendored copy if that ever becomes cheaper to import) is a
one-line change. See the comment at the click pin in pyproject.toml for the measurements.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

__all__ = ["CompletionItem", "click"]
