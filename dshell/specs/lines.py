"""Parse JSON, YAML and TOML text, and find the line of every key.

The standard parsers give values but not positions, so each format gets a light scanner that
runs after the real parser accepted the text and maps every path (``("apps", 2, "cpus")``) to
the line where it starts. Syntax errors become a :class:`SpecError` naming the line.
"""

from __future__ import annotations

import bisect
import json
import re
import sys
import tomllib
from typing import Any

from dshell.specs.issues import Issue, Path, PathLines, SpecError


def _fail(source: str, line: int | None, message: str) -> SpecError:
    return SpecError([Issue(source, line, "", message)])


def _too_long(source: str, text: str, syntax: str, error: ValueError) -> SpecError:
    """A parser's ValueError: Python reads no integer longer than its digit limit (4300)."""
    limit = sys.get_int_max_str_digits()
    if not limit or "integer string conversion" not in str(error):
        return _fail(source, None, f"invalid {syntax}: {error}")
    m = re.search(rf"(?<![\w\"'.])[0-9][0-9a-fA-FxXoObB_]{{{limit},}}", text)
    line = text.count("\n", 0, m.start()) + 1 if m else None
    return _fail(source, line, f"invalid {syntax}: a number with more than {limit} digits")


# ---- JSON --------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))', re.S)


def parse_json(text: str, source: str) -> tuple[Any, PathLines]:
    """The value of a JSON document and the line of each of its paths."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(source, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except ValueError as e:
        raise _too_long(source, text, "JSON", e) from None
    except RecursionError:
        raise _fail(source, None, "invalid JSON: nested too deeply") from None
    return data, PathLines(_json_lines(text))


def _json_lines(text: str) -> dict[Path, int]:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    lines: dict[Path, int] = {}
    # Frames: [is_object, path, key, next_index]; an explicit stack, so depth is no problem.
    stack: list[list[Any]] = []
    expect_key = False
    pos = 0
    while pos < len(text):
        m = _JSON_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        tok = m.group(1) or m.group(2) or m.group(3)
        line = bisect.bisect_right(starts, m.start(m.lastindex or 1))
        top = stack[-1] if stack else None
        if tok in "}]" and len(tok) == 1:
            stack.pop()
            continue
        if tok == ":":
            continue
        if tok == ",":
            expect_key = bool(top and top[0])
            continue
        if top is not None and top[0] and expect_key:
            top[2] = json.loads(tok) if tok.startswith('"') else tok
            lines.setdefault((*top[1], top[2]), line)
            expect_key = False
            continue
        if top is None:
            path: Path = ()
        elif top[0]:
            path = (*top[1], top[2])
        else:
            path = (*top[1], top[3])
            top[3] += 1
        lines.setdefault(path, line)
        if tok in ("{", "["):
            stack.append([tok == "{", path, None, 0])
            expect_key = tok == "{"
    return lines


# ---- YAML --------------------------------------------------------------------------------------


def parse_yaml(text: str, source: str) -> tuple[Any, PathLines]:
    """The value of a YAML document and the line of each of its paths."""
    import yaml

    node = None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise _fail(source, line, f"invalid YAML: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:
        what = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        message = f"invalid YAML: unacceptable character {what}: {e.reason}"
        raise _fail(source, text.count("\n", 0, e.position) + 1, message) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        # A scalar the composer accepted but that makes no value (2026-13-01, 5000 digits).
        line, why = _bad_scalar(node) if node is not None else (None, str(e))
        raise _fail(source, line, f"invalid YAML: {why or e}") from None
    except RecursionError:
        raise _fail(source, None, "invalid YAML: nested too deeply") from None
    lines: dict[Path, int] = {}
    todo: list[tuple[Any, Path]] = [(node, ())] if node is not None else []
    while todo:
        current, path = todo.pop()
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    lines.setdefault((*path, key.value), key.start_mark.line + 1)
                    todo.append((value, (*path, key.value)))
        elif isinstance(current, yaml.SequenceNode):
            todo.extend((item, (*path, i)) for i, item in enumerate(current.value))
    return data, PathLines(lines)


def _bad_scalar(root: Any) -> tuple[int | None, str | None]:
    """The line of the first scalar of a composed YAML document that cannot be constructed,
    and why."""
    import yaml

    loader = yaml.SafeLoader("")
    todo = [root]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
                why = str(e)
                if "integer string conversion" in why:
                    why = f"a number with more than {sys.get_int_max_str_digits()} digits"
                shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
                return node.start_mark.line + 1, f"{shown!r}: {why}"
        elif isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(reversed(node.value))
    return None, None


# ---- TOML --------------------------------------------------------------------------------------

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEYS = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_AOT_HEADER = re.compile(rf"^\s*\[\[\s*({_KEYS})\s*\]\]")
_HEADER = re.compile(rf"^\s*\[\s*({_KEYS})\s*\]")
_ASSIGN = re.compile(rf"^\s*({_KEYS})\s*=")
_TOML_LINE = re.compile(r"at line (\d+)")


def parse_toml(text: str, source: str) -> tuple[Any, PathLines]:
    """The value of a TOML document and the line of each of its keys and tables."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _TOML_LINE.search(str(e))
        line = int(m.group(1)) if m else None
        if line is None and "end of document" in str(e):
            line = text.rstrip("\n").count("\n") + 1
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise _fail(source, line, f"invalid TOML: {msg}") from None
    except ValueError as e:
        raise _too_long(source, text, "TOML", e) from None
    except RecursionError:
        raise _fail(source, None, "invalid TOML: nested too deeply") from None
    return data, PathLines(_toml_lines(text))


def _segments(keys: str) -> list[str]:
    out = []
    for part in re.findall(_KEY, keys):
        if part.startswith('"'):
            try:
                out.append(json.loads(part))
            except json.JSONDecodeError:
                out.append(part[1:-1])
        elif part.startswith("'"):
            out.append(part[1:-1])
        else:
            out.append(part)
    return out


def _toml_lines(text: str) -> dict[Path, int]:
    lines: dict[Path, int] = {}
    aot_len: dict[Path, int] = {}  # resolved path of an array of tables -> its length so far
    current: Path = ()
    in_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in raw:
                in_string = None
            continue
        aot = _AOT_HEADER.match(raw)
        header = aot or _HEADER.match(raw)
        if header:
            current = _resolve(_segments(header.group(1)), aot_len, array=bool(aot))
            lines.setdefault(current, number)
            continue
        assign = _ASSIGN.match(raw)
        if assign:
            lines.setdefault((*current, *_segments(assign.group(1))), number)
            rest = raw[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return lines


def _resolve(segments: list[str], aot_len: dict[Path, int], *, array: bool) -> Path:
    resolved: Path = ()
    for seg in segments[:-1]:
        resolved = (*resolved, seg)
        if resolved in aot_len:
            resolved = (*resolved, aot_len[resolved] - 1)
    resolved = (*resolved, segments[-1]) if segments else resolved
    if array:
        index = aot_len.get(resolved, 0)
        aot_len[resolved] = index + 1
        resolved = (*resolved, index)
    return resolved
