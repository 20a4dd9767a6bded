"""A first read of the mount table, importing only the standard library.

The fast path (:mod:`dshell.fastpath`) reads the table here, when the early start's cached
plan (:mod:`dshell.prestart`) does not match it, to start a backend's listing before dshell has
finished starting (msgspec and the backends cost tens of ms to import). What :func:`read_rows`
reads is only a hint: a backend uses an early listing only if the table, read and checked by
the session, asks for exactly the same command.
"""

from __future__ import annotations

from typing import NamedTuple

from .nspath import normpath


class Row(NamedTuple):
    """A mount-table row as :func:`read_rows` read it (the table's own fields)."""

    target: str
    type: str
    source: str
    options: dict[str, str]


def read_rows(text: str) -> list[Row] | None:
    """The table's rows as far as they are well formed (a hint: the session reads the table
    again, and reports what is wrong with it); None when it is not TOML at all."""
    import tomllib  # ~5 ms; msgspec and the backends are what the early start must not wait for

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    rows = data.get("mount")
    out = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        target, type_, source = row.get("target"), row.get("type"), row.get("source", "")
        options = row.get("options", {})
        if isinstance(target, str) and target and isinstance(type_, str) and type_:
            opts = {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}
            out.append(Row(normpath(target), type_, str(source), opts))
    return out
