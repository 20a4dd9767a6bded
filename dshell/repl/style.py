"""Colours of the prompt, toolbar and completion menu; monochrome when colour is off."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit.output import ColorDepth
    from prompt_toolkit.styles import Style

    from ..session import Env

STYLE = {
    "prompt": "ansigreen bold",
    "prompt.path": "ansiblue bold",
    "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
    "bottom-toolbar.warn": "bg:#303030 ansiyellow",
    "bottom-toolbar.key": "bg:#303030 #a0a0a0",
    "completion-menu.completion": "bg:#404040 #ffffff",
    "completion-menu.completion.current": "bg:#00afaf #000000",
    "completion-menu.meta.completion": "bg:#303030 #a0a0a0",
}


def make_style() -> Style:
    from prompt_toolkit.styles import Style

    return Style.from_dict(STYLE)


def color_depth(env: Env) -> ColorDepth | None:
    """NO_COLOR, --color=never and TERM=dumb give one-bit output; None lets prompt_toolkit
    pick from the terminal."""
    from prompt_toolkit.output import ColorDepth

    return None if env.use_color(True) else ColorDepth.DEPTH_1_BIT
