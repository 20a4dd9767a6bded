"""A small TOML writer for the plain data :func:`dshell.specs.export.to_native` returns.

Tables become ``[a.b]`` sections, lists of tables ``[[a.b]]``; everything else is written
inline. Strings use TOML basic strings (JSON escapes, which TOML shares, plus DEL).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(data: dict[str, Any], prefix: str, out: list[str]) -> None:
    for key, value in data.items():
        if not (isinstance(value, dict) and value) and not _is_table_list(value):
            out.append(f"{_key(key)} = {_value(value)}")
    for key, value in data.items():
        name = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, dict) and value:
            out.extend(["", f"[{name}]"])
            _table(value, name, out)
        elif _is_table_list(value):
            for item in value:
                out.extend(["", f"[[{name}]]"])
                _table(item, name, out)


def dumps(data: dict[str, Any]) -> str:
    """``data`` as a TOML document."""
    out: list[str] = []
    _table(data, "", out)
    return "\n".join(out).lstrip("\n") + "\n"
