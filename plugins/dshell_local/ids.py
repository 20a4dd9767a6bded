"""Task ids: ``<name>.<suffix>``, safe as a path component and ordered by creation time.

The suffix is 10 characters of lowercase Crockford base32 (50 bits): milliseconds since
2020 in the high 40 bits and a counter in the low 10, made strictly increasing by the one
generator the engine owns, so ids never repeat even when the clock steps back.
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
SUFFIX_LEN = 10
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NAME = 63


def encode_suffix(value: int) -> str:
    chars = []
    for _ in range(SUFFIX_LEN):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode_suffix(suffix: str) -> int | None:
    if len(suffix) != SUFFIX_LEN:
        return None
    value = 0
    for c in suffix:
        d = _DECODE.get(c)
        if d is None:
            return None
        value = value * 32 + d
    return value


def sanitize_name(name: str) -> str:
    """A task name usable in an id: ``[A-Za-z0-9_-]``, at most 63 characters."""
    clean = _NAME_BAD.sub("-", name).strip("-")[:MAX_NAME]
    return clean or "task"


def default_name(command: list[str], shell: bool) -> str:
    """The basename of argv[0] (of the first word for a shell string)."""
    if not command:
        return "task"
    first = command[0].split()[0] if shell and command[0].split() else command[0]
    return sanitize_name(os.path.basename(first))


def is_safe_id(task_id: str) -> bool:
    """True if ``task_id`` could be one of ours (and so is safe as a path component)."""
    name, dot, suffix = task_id.rpartition(".")
    return bool(dot) and sanitize_name(name) == name and decode_suffix(suffix) is not None


class IdGenerator:
    """Strictly increasing suffixes; seed it with the largest suffix already stored."""

    def __init__(self, last: int = 0) -> None:
        self._last = last

    def observe(self, task_id: str) -> None:
        value = decode_suffix(task_id.rpartition(".")[2])
        if value is not None and value > self._last:
            self._last = value

    def next_suffix(self) -> str:
        now = (int(time.time() * 1000) - _EPOCH_MS) << 10
        self._last = max(now, self._last + 1)
        return encode_suffix(self._last)

    def new_id(self, name: str) -> str:
        return f"{sanitize_name(name)}.{self.next_suffix()}"
