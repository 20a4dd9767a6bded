"""Typed, error-collecting access to one JSON object (Marathon, Chronos, Metronome, Aurora).

Each accessor returns a safe default after recording a precise error (``$.apps[2].cpus:
expected a number, got a string ('two')``), so a loader reads a whole file in one pass.
:meth:`Reader.finish` then warns about the keys nobody asked for.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from dshell.specs.issues import Issues, Path, describe

_EMPTY: tuple[object, ...] = (None, "", [], {})


class Reader:
    """One JSON object at ``path``; records errors in ``issues``."""

    def __init__(self, data: Any, path: Path, issues: Issues) -> None:
        self.path = path
        self.issues = issues
        self.seen: set[str] = set()
        if isinstance(data, dict):
            self.data: dict[str, Any] = data
        else:
            issues.error(path, f"expected an object, got {describe(data)}")
            self.data = {}

    def at(self, *keys: str | int) -> Path:
        """The path of a key (or of a key and its sub-keys) of this object."""
        return (*self.path, *keys)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def items(self, key: str, what: str = "a list") -> list[Any]:
        """A list value (empty when absent; an error when not a list)."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self._bad(key, what, value)
            return []
        return value

    def _bad(self, key: str, want: str, value: Any) -> None:
        self.issues.error(self.at(key), f"expected {want}, got {describe(value)}")

    def _missing(self, key: str, want: str) -> None:
        self.issues.error(self.at(key), f"required field '{key}' is missing ({want})")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                self._missing(key, "a string")
            return default
        if not isinstance(value, str):
            self._bad(key, "a string", value)
            return default
        return value

    def number(
        self, key: str, default: float | None, *, required: bool = False, integer: bool = False
    ) -> float | None:
        """A finite number (an integer when ``integer``); floats with no fraction count."""
        value = self.raw(key)
        want = "an integer" if integer else "a number"
        if value is None:
            if required:
                self._missing(key, want)
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._bad(key, want, value)
            return default
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the largest float (about 1.8e308)
            self._bad(key, f"{want} of at most {sys.float_info.max:.2g}", value)
            return default
        if not math.isfinite(number):
            self._bad(key, want if integer else "a finite number", value)
            return default
        if integer and number != int(number):
            self._bad(key, want, value)
            return default
        return number

    def integer(self, key: str, default: int | None, *, required: bool = False) -> int | None:
        value = self.number(key, None, required=required, integer=True)
        return default if value is None else int(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self._bad(key, "true or false", value)
            return default
        return value

    def texts(self, key: str) -> list[str]:
        out = []
        for i, item in enumerate(self.items(key, "a list of strings")):
            if isinstance(item, str):
                out.append(item)
            else:
                self.issues.error(self.at(key, i), f"expected a string, got {describe(item)}")
        return out

    def text_map(self, key: str) -> dict[str, str]:
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self._bad(key, "an object of strings", value)
            return {}
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):  # YAML keys may be numbers, booleans or null
                self.issues.error(self.at(key, str(k)), f"expected a string key, got {describe(k)}")
            elif isinstance(v, str):
                out[k] = v
            else:
                self.issues.error(self.at(key, k), f"expected a string, got {describe(v)}")
        return out

    def child(self, key: str) -> Reader | None:
        value = self.raw(key)
        return None if value is None else Reader(value, self.at(key), self.issues)

    def children(self, key: str) -> list[Reader]:
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self._bad(key, "a list", value)
            return []
        return [Reader(item, self.at(key, i), self.issues) for i, item in enumerate(value)]

    def finish(
        self,
        *,
        ignore: Iterable[str] = (),
        unsupported: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        """Warn about keys not read: ``unsupported`` ones with their reason (when not empty),
        ``errors`` ones as errors (when not empty), any other unknown key as ignored."""
        skip = set(ignore)
        for key, value in self.data.items():
            if key in self.seen or key in skip:
                continue
            if errors and key in errors:
                if value not in _EMPTY:
                    self.issues.error(self.at(key), errors[key])
            elif unsupported and key in unsupported:
                if value not in _EMPTY:
                    self.issues.warn(self.at(key), f"ignored: {unsupported[key]}")
            else:
                self.issues.warn(self.at(str(key)), f"unknown field '{key}' (ignored)")
