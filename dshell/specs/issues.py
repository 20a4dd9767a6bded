"""Collecting spec errors and warnings, each with its file, line and field.

Loaders report every problem of a file, not just the first: they call :meth:`Issues.error` and
go on with a safe default, then :meth:`Issues.check` raises one :class:`SpecError` listing them
all. A problem found on the normalized model (a cross-field check) is reported against the model
object; :meth:`Issues.note` remembered where that object came from and how its fields are spelt
in the source format, so the message still names the source's own path and line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Protocol

import msgspec

from dshell.errors import UsageError

Path = tuple[str | int, ...]
Spelling = str | int | Path  # how a model field is spelt in the source: a key, index or sub-path


class LineIndex(Protocol):
    """Finds the line of a source path (1-based), or None when it cannot tell."""

    def line(self, path: Path) -> int | None: ...


class PathLines:
    """A line index from a map of exact paths; unknown paths fall back to their nearest parent."""

    def __init__(self, lines: Mapping[Path, int] | None = None) -> None:
        self.lines: dict[Path, int] = dict(lines or {})

    def line(self, path: Path) -> int | None:
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None


class Issue(msgspec.Struct, frozen=True):
    """One problem: ``source:line: path: message``."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(UsageError):
    """An invalid spec file (exit status 2). ``errors`` lists every problem found."""

    def __init__(self, errors: list[Issue], *, hint: str | None = None) -> None:
        errors = sorted(errors, key=lambda e: (e.source, e.line or 0))
        super().__init__("\n".join(str(e) for e in errors), hint=hint)
        self.errors = errors


def render_path(path: Path, style: str) -> str:
    """``$.apps[2].cpus`` (json) or ``service[0].cpus`` (toml, aurora)."""
    out = "$" if style == "json" else ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not isinstance(part, str):  # a YAML key that is not a string (null, 1.5, a date)
            out += f"[{part!r}]"
        elif part.isidentifier() or part.replace("-", "_").isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def suggest(word: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def describe(value: object) -> str:
    """A short description of a wrong value for an error message: its type and a preview."""
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
        type(None): "null",
    }
    kind = names.get(type(value), type(value).__name__)
    if isinstance(value, bool | int | float):
        shown = repr(value)
        return f"{kind} ({shown if len(shown) <= 40 else shown[:37] + '...'})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"{kind} ({shown!r})"
    return kind


class Issues:
    """The errors and warnings of one source file."""

    def __init__(self, source: str, index: LineIndex | None = None, style: str = "json") -> None:
        self.source = source
        self.index: LineIndex = index or PathLines()
        self.style = style
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        # id(obj) -> (obj, path, field spelling); obj is kept so that its id stays unique.
        self._origins: dict[int, tuple[object, Path, Mapping[str, Spelling]]] = {}

    def _issue(self, path: Path, message: str, line: int | None) -> Issue:
        found = line if line is not None else self.index.line(path)
        return Issue(self.source, found, render_path(path, self.style), message)

    def error(self, path: Path, message: str, *, line: int | None = None) -> None:
        self.errors.append(self._issue(path, message, line))

    def warn(self, path: Path, message: str, *, line: int | None = None) -> None:
        self.warnings.append(self._issue(path, message, line))

    def note(self, obj: object, path: Path, names: Mapping[str, Spelling] | None = None) -> None:
        """Remember that model object ``obj`` was read at ``path``; ``names`` maps a model field
        to its key (or sub-path) in the source, when they differ."""
        self._origins[id(obj)] = (obj, path, names or {})

    def path_of(self, obj: object, field: str | int | None = None) -> Path:
        """The source path of ``obj`` (and of one of its fields), as noted by the loader."""
        _, path, names = self._origins.get(id(obj), (obj, (), {}))
        if field is None:
            return path
        if isinstance(field, int):
            return (*path, field)
        spelt = names.get(field, field)
        return (*path, *spelt) if isinstance(spelt, tuple) else (*path, spelt)

    def error_at(self, obj: object, field: str | int | None, message: str) -> None:
        self.error(self.path_of(obj, field), message)

    def warn_at(self, obj: object, field: str | int | None, message: str) -> None:
        self.warn(self.path_of(obj, field), message)

    def warning_texts(self) -> list[str]:
        return [str(w) for w in self.warnings]

    def check(self, *, hint: str | None = None) -> None:
        """Raise one SpecError for every error collected so far."""
        if self.errors:
            raise SpecError(list(self.errors), hint=hint)
