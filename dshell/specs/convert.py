"""Build model Structs from plain data (TOML/JSON/YAML), collecting every error with its path.

``msgspec.convert`` stops at the first error of a whole tree; here each Struct field is converted
on its own, nested Structs recursively, so one pass reports all the mistakes of a file. Every
Struct built is noted in :class:`Issues`, so later cross-field checks can point at its source.
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Any, Union

import msgspec

from dshell.specs.issues import Issues, Path, describe, suggest

INVALID: Any = object()  # the result of a conversion that failed (the error is recorded)

_AT = re.compile(r" - at `\$((?:\[[^\]]*\]|\.[^.\[`]+)*)`$")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a Struct class (cached: resolving them is slow)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _struct_in(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct class of ``tp`` or of ``tp | None``."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _struct_in(args[0])
    return None


def _list_item(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct class ``S`` when ``tp`` is ``list[S]``."""
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return _struct_in(item) if _struct_in(item) is item else None
    return None


def _sub_path(error: msgspec.ValidationError) -> tuple[str, Path]:
    """Split msgspec's ``Expected `int`, got `str` - at `$[0].x``` into message and path."""
    text = str(error)
    m = _AT.search(text)
    if not m:
        return text, ()
    path: list[str | int] = []
    for part in re.findall(r"\[([^\]]*)\]|\.([^.\[]+)", m.group(1)):
        index, key = part
        if key:
            path.append(key)
        elif index.lstrip("-").isdigit():
            path.append(int(index))
        else:
            path.append(index.strip("'\""))
    return text[: m.start()], tuple(path)


_TYPE_NAMES = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "a boolean",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}
_EXPECTED = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`$")


def _reword(message: str, data: Any) -> str:
    """msgspec's "Expected `int`, got `str`" as "expected an integer, got a string ('x')"."""
    m = _EXPECTED.match(message)
    if not m:
        return message[:1].lower() + message[1:]
    want = " or ".join(_TYPE_NAMES.get(t.strip(), t.strip()) for t in m.group(1).split("|"))
    got = describe(data) if data is not None else _TYPE_NAMES.get(m.group(2), m.group(2))
    return f"expected {want}, got {got}"


def convert(data: Any, tp: Any, path: Path, issues: Issues) -> Any:
    """``data`` converted to ``tp``, or INVALID after recording why at ``path``."""
    struct = _struct_in(tp)
    if struct is not None and isinstance(data, dict):
        return convert_struct(data, struct, path, issues)
    item = _list_item(tp)
    if item is not None and isinstance(data, list):
        out = [convert(v, item, (*path, i), issues) for i, v in enumerate(data)]
        return INVALID if any(v is INVALID for v in out) else out
    if typing.get_origin(tp) is dict and isinstance(data, dict):
        key_tp, value_tp = typing.get_args(tp)
        pairs = {
            convert(k, key_tp, path, issues): convert(v, value_tp, (*path, str(k)), issues)
            for k, v in data.items()
        }
        return INVALID if INVALID in pairs or INVALID in pairs.values() else pairs
    if struct is not None and data is not None:
        issues.error(path, f"expected a table, got {describe(data)}")
        return INVALID
    try:
        value = msgspec.convert(data, tp)
    except msgspec.ValidationError as e:
        message, sub = _sub_path(e)
        issues.error((*path, *sub), _reword(message, None if sub else data))
        return INVALID
    if isinstance(value, float) and not math.isfinite(value):
        issues.error(path, f"expected a finite number, got {value}")
        return INVALID
    return value


def convert_struct(data: dict[str, Any], cls: type[Any], path: Path, issues: Issues) -> Any:
    """Build ``cls`` from the table ``data``; unknown keys are errors (with a suggestion)."""
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    ok = True
    for key in data:
        if key not in fields:
            shown = key if isinstance(key, str) else repr(key)
            # Reported, but the rest is still built so that later checks run too.
            issues.error((*path, shown), f"unknown field '{shown}'{suggest(str(key), fields)}")
    for name, field in fields.items():
        if name not in data:
            if field.required:
                issues.error((*path, name), f"required field '{name}' is missing")
                ok = False
            continue
        value = convert(data[name], hints[field.name], (*path, name), issues)
        if value is INVALID:
            ok = False
        else:
            kwargs[field.name] = value
    if not ok:
        return INVALID
    obj = cls(**kwargs)
    issues.note(obj, path)
    _note_children(obj, path, issues)
    return obj


def _note_children(obj: msgspec.Struct, path: Path, issues: Issues) -> None:
    """Note list items that are Structs (built by msgspec, e.g. Constraint) under their index."""
    for field in msgspec.structs.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, msgspec.Struct) and issues.path_of(item) == ():
                    issues.note(item, (*path, field.encode_name, i))
