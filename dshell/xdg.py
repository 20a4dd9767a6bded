"""dshell's directories as strings, from the environment only (see :mod:`dshell.paths`).

This module imports nothing but :mod:`os`: the early start of ``dshell ps``
(:mod:`dshell.prestart`) needs the config and state dirs before anything else is imported
(:mod:`pathlib` alone costs ~10 ms). :mod:`dshell.paths` builds its ``Path`` objects from
these functions, so there is one definition of where each directory is.
"""

from __future__ import annotations

import os


def _xdg(var: str, default: str) -> str:
    return os.environ.get(var) or os.path.join(os.path.expanduser("~"), default)


def config_home() -> str:
    """``$DSHELL_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/dshell`` (``~/.config/dshell``)."""
    return os.environ.get("DSHELL_CONFIG_DIR") or os.path.join(
        _xdg("XDG_CONFIG_HOME", ".config"), "dshell"
    )


def state_home() -> str:
    """``$DSHELL_STATE_DIR`` or ``$XDG_STATE_HOME/dshell`` (``~/.local/state/dshell``)."""
    return os.environ.get("DSHELL_STATE_DIR") or os.path.join(
        _xdg("XDG_STATE_HOME", ".local/state"), "dshell"
    )


def runtime_home() -> str:
    """``$DSHELL_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/dshell``, else ``/tmp/dshell-<uid>``."""
    if os.environ.get("DSHELL_RUNTIME_DIR"):
        return os.environ["DSHELL_RUNTIME_DIR"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "dshell")
    return f"/tmp/dshell-{os.getuid()}"


#: The mount table's file name in the config dir.
TABLE_FILE = "mounts.toml"


def mount_table() -> str:
    """The mount table's path."""
    return os.path.join(config_home(), TABLE_FILE)
