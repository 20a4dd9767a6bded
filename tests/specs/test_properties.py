"""Property tests: no spec file, however mangled, makes a loader fail with a traceback.

The seeds are the valid inputs of the golden tests (``data/``), plus the golden outputs of the
Aurora files exported as native and Marathon specs (with processes, lifecycle, announcer, and
Marathon's ``dshell.extra`` label, which is mutated as data too). A structured spec (native,
Marathon, Chronos, Metronome) is parsed to data and mutated as data: keys dropped, renamed to a
near miss (``intances``) or added; values replaced by values of another type (null, booleans,
huge, negative or non-finite numbers, long or unusual strings, nested lists and tables) or by
deeply nested structures; list entries duplicated or emptied. It is then written back in every
syntax its format accepts (TOML, JSON, YAML). Every spec, Aurora files included, is also mutated
as text: truncated, characters inserted, lines swapped or dropped, values replaced by literals
of the syntax. Aurora files are mutated as Python too (keyword arguments dropped, renamed or
given odd values).

Whatever comes out, ``load_text`` must either return a LoadedSpec that survives a msgspec round
trip and holds only finite numbers, or raise a UsageError (a SpecError for a bad file) whose
every problem names the file, says where (a line or a field path; see WHOLE_FILE for the
exceptions) and has a message: never any other exception.

Runs are derandomized (the same examples every run, so CI is reproducible) and keep no example
database. For a deeper local search, ``DSHELL_PROPERTY_SCALE=10`` runs ten times as many
examples and ``DSHELL_PROPERTY_RANDOM=1`` draws new ones on every run (hypothesis prints how to
reproduce a failure); lift pytest's per-test timeout for those (``-o timeout=0``).
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import json
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import yaml
from dshell.errors import UsageError
from dshell.specs import LoadedSpec, SpecError, detect, load_text, model, tomlw
from dshell.specs.export import to_marathon, to_native
from dshell.specs.marathon import EXTRA_LABEL
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from .helpers import DATA, GOLDEN, OPTIONS, need_pystachio

SCALE = float(os.environ.get("DSHELL_PROPERTY_SCALE", "1"))
RANDOM = os.environ.get("DSHELL_PROPERTY_RANDOM") == "1"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        # no explain phase: it traces every line to explain a failure, which took over ten
        # minutes on a 2-core machine; the shrunk example is enough
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# ---- seeds -------------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[str], Any]] = {
    "toml": tomllib.loads,
    "json": json.loads,
    "yaml": yaml.safe_load,
}
# The syntaxes each format may be written in (docs/specs.md: "YAML works too").
SYNTAXES = {
    "native": ("toml", "json", "yaml"),
    "marathon": ("json", "yaml"),
    "chronos": ("json", "yaml"),
    "metronome": ("json", "yaml"),
}


@dataclass(frozen=True)
class Seed:
    name: str
    fmt: str
    data: Any
    text: str | None = None  # the file as written, for a seed read from data/


def _decode_extra(data: Any) -> Any:
    """The ``dshell.extra`` label (a JSON object in a string) as data, to be mutated too."""
    if isinstance(data, dict):
        return {
            k: json.loads(v) if k == EXTRA_LABEL and isinstance(v, str) else _decode_extra(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_decode_extra(v) for v in data]
    return data


def _seeds() -> dict[str, list[Seed]]:
    out: dict[str, list[Seed]] = {fmt: [] for fmt in SYNTAXES}
    for path in sorted(DATA.iterdir()):
        if path.suffix == ".aurora":
            continue
        text = path.read_text(encoding="utf-8")
        fmt, syntax = detect(text, path.name)
        out[fmt].append(Seed(path.name, fmt, _PARSERS[syntax](text), text))
    # The golden outputs of the Aurora files, exported: native specs with processes, lifecycle,
    # announcer and update_config, and Marathon apps carrying them in their dshell.extra label.
    for path in sorted(GOLDEN.glob("*.aurora.json")):
        loaded = msgspec.convert(json.loads(path.read_text(encoding="utf-8")), LoadedSpec)
        out["native"].append(Seed(path.name, "native", to_native(loaded)))
        for i, svc in enumerate(loaded.services):
            app = _decode_extra(to_marathon(svc))
            out["marathon"].append(Seed(f"{path.name}-{i}", "marathon", app))
    return out


SEEDS = _seeds()
AURORA = sorted(p.name for p in DATA.iterdir() if p.suffix == ".aurora")


def _model_fields() -> set[str]:
    names: set[str] = set()
    for obj in vars(model).values():
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
            names.update(f.encode_name for f in msgspec.structs.fields(obj))
    return names


def _keys_of(data: Any, out: set[str]) -> set[str]:
    if isinstance(data, dict):
        for k, v in data.items():
            out.add(str(k))
            _keys_of(v, out)
    elif isinstance(data, list):
        for v in data:
            _keys_of(v, out)
    return out


# Keys a mutation may add: every field name of the model and of the seeds.
VOCABULARY = sorted(
    _model_fields()
    | {k for seeds in SEEDS.values() for s in seeds for k in _keys_of(s.data, set())}
)

# ---- values ------------------------------------------------------------------------------------

_NAN, _INF = float("nan"), float("inf")
# Stands for an integer longer than Python reads by default (4300 digits): json.dumps cannot
# write one either, so _dump writes the digits in its place.
HUGE_INT = "__huge_int__"
HUGE_DIGITS = "1" + "0" * 5000
ODD_SCALARS: list[Any] = [
    HUGE_INT,
    10**400,
    -(10**400),
    None,
    True,
    False,
    0,
    -1,
    1,
    -0.0,
    0.5,
    -(2**31),
    2**31,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**100,
    -(10**100),
    1e300,
    -1e300,
    5e-324,
    _NAN,
    _INF,
    -_INF,
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "true",
    "null",
    "NaN",
    "x" * 10_000,
    "ünïcödé",
    "💥🚀",
    "\u202eevil",
    "a\x00b",
    "line\nbreak",
    "/",
    "//",
    "..",
    "../..",
    "a b",
    "HTTP",
    "COMMAND",
    "UNIQUE",
    "MAX_PER",
    "tcp",
    "*/5 * * * *",
    "R/2026-01-01T00:00:00Z/PT1H",
    "{{x}}",
    "$PORT0",
    "²3 * * * *",
    "*/² * * * *",
    "\u0661\u0662",
    "[" * 5000,
    '{"instances": 1e999}',
]
_CHARS = st.characters(codec="utf-8")  # a file read as UTF-8 has no surrogates


def _scalars(syntax: str) -> st.SearchStrategy[Any]:
    options = [
        st.sampled_from(ODD_SCALARS),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(_CHARS, max_size=24),
    ]
    if syntax == "yaml":  # YAML has dates and times of its own
        options.append(
            st.sampled_from([dt.date(2026, 1, 1), dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)])
        )
    return st.one_of(options)


def _values(syntax: str) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(syntax),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(_CHARS, max_size=10), inner, max_size=4),
        ),
        max_leaves=8,
    )


def _near_miss(data: st.DataObject, word: str) -> str:
    """A misspelling of ``word``: a letter dropped, doubled, swapped or changed, case, plural."""
    op = data.draw(
        st.sampled_from(["drop", "double", "swap", "change", "upper", "camel", "plural", "space"]),
        label="misspelling",
    )
    if not word:
        return "x"
    i = data.draw(st.integers(0, len(word) - 1), label="letter")
    if op == "drop":
        return word[:i] + word[i + 1 :]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    if op == "swap" and len(word) > 1:
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "change":
        return word[:i] + data.draw(st.sampled_from("aeiouxz_-"), label="letter") + word[i + 1 :]
    if op == "upper":
        return word.upper() if word != word.upper() else word.lower()
    if op == "camel":
        if "_" in word:
            head, *rest = word.split("_")
            return head + "".join(p[:1].upper() + p[1:] for p in rest)
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in word)
    if op == "plural":
        return word[:-1] if word.endswith("s") else word + "s"
    return f" {word}"


# ---- structural mutations ----------------------------------------------------------------------

TreePath = tuple[Any, ...]


def _paths(data: Any, prefix: TreePath = ()) -> list[TreePath]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _get(tree: Any, path: TreePath) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Any, path: TreePath, value: Any) -> Any:
    if not path:
        return value
    _get(tree, path[:-1])[path[-1]] = value
    return tree


def _nest(data: st.DataObject, value: Any) -> Any:
    # Deeper nesting (hundreds of levels) comes from the text mutations: see LITERALS.
    depth = data.draw(st.integers(1, 40), label="depth")
    as_list = data.draw(st.booleans(), label="as list")
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


# Digits str.isdigit() accepts but int() may not, and letters that look like ASCII ones.
ODD_CHARS = [
    "²",
    "\u0661",
    "\U0001d7d8",
    "Ⅻ",
    "\u0430",
    "\u03bf",
    "\u00a0",
    "\u200b",
    "\x00",
    "é",
    "💥",
]


def _tweak(data: st.DataObject, value: Any) -> Any:
    """A value of the same kind, a little or very wrong: a number far out of range or not
    finite, a string with an odd character, cut short or blown up."""
    if isinstance(value, bool):
        return data.draw(st.sampled_from([not value, int(value), str(value).lower()]))
    if isinstance(value, int | float) and abs(value) < 1e300:
        big = value * 10**400 if isinstance(value, int) else value * 1e300
        choices = [-value, big, 10**400, HUGE_INT, _NAN, _INF, -_INF, str(value)]
        choices += [value + 0.5, float(value), 2**63, -(2**63) - 1, 0, -1]
        return data.draw(st.sampled_from(choices), label="number")
    if isinstance(value, str):
        op = data.draw(st.sampled_from(["char", "cut", "repeat", "case", "pad"]), label="edit")
        i = data.draw(st.integers(0, len(value)), label="at")
        if op == "char":
            odd = data.draw(st.sampled_from(ODD_CHARS), label="char")
            replace = data.draw(st.booleans(), label="replace")
            return value[:i] + odd + value[i + (1 if replace else 0) :]
        if op == "cut":
            return value[:i]
        if op == "repeat":  # long, not huge: two x1000 on one field made 10 MB of YAML,
            # which PyYAML took minutes to read on a loaded 2-core machine (a CI timeout)
            times = data.draw(st.sampled_from([2, 1000]), label="times")
            return value * (times if len(value) * times <= 20_000 else 2)
        if op == "case":
            return value.swapcase()
        return f" {value} "
    return data.draw(st.sampled_from(ODD_SCALARS), label="value")


def _mutate(data: st.DataObject, tree: Any, syntax: str) -> Any:
    """One random structural mutation of ``tree`` (changed in place where possible)."""
    path = data.draw(st.sampled_from(_paths(tree)), label="at")
    node = _get(tree, path)
    parent: Any = _get(tree, path[:-1]) if path else None
    ops = ["replace", "nest", "swap"]
    if path:
        ops.append("delete")
    if not isinstance(node, dict | list):  # most often: a leaf changed, but not much
        ops += ["tweak"] * 4
    if isinstance(parent, dict):
        ops.append("rename")
    if isinstance(node, dict):
        ops += ["add", "add-near-miss", "empty"]
    if isinstance(node, list):
        ops += ["append", "empty"] + (["duplicate"] if node else [])
    if syntax == "toml" and not path:
        ops = [o for o in ops if o not in ("replace", "nest", "swap")]  # a document is a table
    op = data.draw(st.sampled_from(ops), label="op")
    if op == "replace":
        return _set(tree, path, data.draw(_values(syntax), label="value"))
    if op == "tweak":
        value = _tweak(data, node)
        return _set(tree, path, None if value is None and syntax == "toml" else value)
    if op == "nest":
        return _set(tree, path, _nest(data, node))
    if op == "swap":
        other = data.draw(st.sampled_from(_paths(tree)), label="from")
        return _set(tree, path, copy.deepcopy(_get(tree, other)))
    if op == "delete":
        del parent[path[-1]]
    elif op == "rename":
        new = _near_miss(data, str(path[-1]))
        items = [(new if k == path[-1] else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    elif op in ("add", "add-near-miss"):
        if op == "add-near-miss" and node:
            key = _near_miss(data, str(data.draw(st.sampled_from(sorted(map(str, node))))))
        else:
            keys = st.one_of(st.sampled_from(VOCABULARY), st.text(_CHARS, max_size=10))
            if syntax == "yaml":  # YAML keys need not be strings
                keys = st.one_of(keys, st.integers(-1, 2), st.none(), st.booleans())
            key = data.draw(keys, label="key")
        node[key] = data.draw(_values(syntax), label="value")
    elif op == "append":
        node.append(data.draw(_values(syntax), label="value"))
    elif op == "duplicate":
        i = data.draw(st.integers(0, len(node) - 1), label="item")
        node.insert(data.draw(st.integers(0, len(node)), label="to"), copy.deepcopy(node[i]))
    else:  # empty
        node.clear()
    return tree


def _no_nulls(data: Any) -> Any:
    """TOML has no null: a null value is left out."""
    if isinstance(data, dict):
        return {k: _no_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_no_nulls(v) for v in data if v is not None]
    return data


def _encode_extra(data: Any) -> Any:
    """Back to the label's string form (whatever the mutations made of it)."""
    if isinstance(data, dict):
        return {
            k: json.dumps(v, default=str).replace(json.dumps(HUGE_INT), HUGE_DIGITS)
            if k == EXTRA_LABEL and not isinstance(v, str)
            else _encode_extra(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_encode_extra(v) for v in data]
    return data


def _dump(data: st.DataObject, tree: Any, syntax: str) -> str:
    tree = _encode_extra(tree)
    if syntax == "toml":
        text = tomlw.dumps(_no_nulls(tree))
    elif syntax == "json":
        indent = data.draw(st.sampled_from([2, None]), label="indent")
        text = json.dumps(tree, indent=indent, ensure_ascii=data.draw(st.booleans()))
    else:
        text = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)
        text = text.replace(f"'{HUGE_INT}'", HUGE_DIGITS)
    return text.replace(json.dumps(HUGE_INT), HUGE_DIGITS).replace(HUGE_INT, HUGE_DIGITS)


# ---- text mutations ----------------------------------------------------------------------------

SPECIAL_TEXT = [
    "\x00",
    "\ufeff",
    "\r",
    "\t",
    "\x0c",
    "\u2028",
    "\x85",
    "\n",
    "{",
    "}",
    "[",
    "]",
    "[[",
    "]]",
    '"',
    "'",
    '"""',
    "\\",
    "#",
    ":",
    "=",
    ",",
    "- ",
    "? ",
    "&a ",
    "*a",
    "!!binary aGk=",
    "!!python/object/apply:os.system ['true']",
    "<<: *a\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "9" * 5000,
    "[" * 3000,
    "{" * 1000,
    "{{",
    "}}",
    "\\u",
    "\\ud800",
    "😀" * 50,
]
# Values a line's value may become, in each syntax (all valid there).
LITERALS = {
    "json": [
        "null",
        "true",
        "-1",
        "0",
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "1" + "0" * 5000,
        '"\\ud800"',
        '"\\u0000"',
        "[]",
        "{}",
        "[[[[[]]]]]",
        '{"a": 1, "a": 2}',
        '"' + "x" * 100_000 + '"',
        "0.1e-400",
        *(("[" * n + "1" + "]" * n) for n in (100, 500, 900, 990, 2000)),
        *(('{"a": ' * n + "1" + "}" * n) for n in (100, 900, 2000)),
    ],
    "toml": [
        "nan",
        "inf",
        "-inf",
        "1979-05-27T07:32:00Z",
        "1979-05-27T07:32:00",
        "1979-05-27",
        "07:32:00",
        "0x7fffffffffffffff",
        "0xffffffffffffffffffffffff",
        "1_000",
        "1e400",
        "1" + "0" * 5000,
        "-0",
        "[]",
        "{}",
        "[[]]",
        "[1, 'a', {}]",
        '"""multi\nline"""',
        "'literal'",
        "true",
        *(("[" * n + "1" + "]" * n) for n in (100, 500, 2000)),
        *(("{a = " * n + "1" + "}" * n) for n in (100, 500)),
    ],
    "yaml": [
        "~",
        "null",
        ".nan",
        ".inf",
        "-.inf",
        "2026-01-01",
        "2026-01-01T00:00:00Z",
        "0x10",
        "0o17",
        "1_000",
        "yes",
        "1" + "0" * 5000,
        "1e400",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!float nan",
        "!!str 1",
        "&a x",
        "*missing",
        "[]",
        "{}",
        "[[[]]]",
        "|\n  text",
        "? [a]",
        *(("[" * n + "1" + "]" * n) for n in (100, 500, 2000)),
        *(("{a: " * n + "1" + "}" * n) for n in (100, 500)),
    ],
    "aurora": [
        "None",
        "True",
        "-1",
        "0",
        "1e400",
        "-1e400",
        "float('nan')",
        "10**100",
        "'x' * 100000",
        "'ü💥'",
        "[]",
        "{}",
        "[[[]]]",
        "(1,)",
        "{'a': {'b': None}}",
        "Resources()",
        "Process()",
        "Task()",
        "'{{unbound}}'",
        "'{{thermos.ports[nope]}}'",
        "lambda: 0",
        "object()",
        "MB",
        "-1*MB",
        "''",
        "[" * 200 + "]" * 200,
    ],
}
_ASSIGN = {"json": '": ', "toml": " = ", "yaml": ": ", "aurora": " = "}


def _text_mutation(data: st.DataObject, text: str, syntax: str) -> str:
    lines = text.splitlines(keepends=True)
    ops = ["truncate", "insert", "insert-special", "cut", "copy", "value"]
    if len(lines) > 1:
        ops += ["swap-lines", "drop-line", "duplicate-line", "indent"]
    op = data.draw(st.sampled_from(ops), label="text op")
    at = data.draw(st.integers(0, len(text)), label="position")
    if op == "truncate":
        return text[:at]
    if op == "insert":
        return (
            text[:at]
            + data.draw(st.text(_CHARS, min_size=1, max_size=8), label="chars")
            + text[at:]
        )
    if op == "insert-special":
        return text[:at] + data.draw(st.sampled_from(SPECIAL_TEXT), label="special") + text[at:]
    if op == "cut":
        return text[:at] + text[at + data.draw(st.integers(1, 40), label="length") :]
    if op == "copy":  # paste a piece of the file elsewhere in it
        start = data.draw(st.integers(0, len(text)), label="from")
        piece = text[start : start + data.draw(st.integers(1, 80), label="length")]
        return text[:at] + piece + text[at:]
    if op == "value":
        sep = _ASSIGN[syntax]
        candidates = [i for i, line in enumerate(lines) if sep in line]
        if not candidates:
            return text
        i = data.draw(st.sampled_from(candidates), label="line")
        head = lines[i][: lines[i].index(sep) + len(sep)]
        tail = "," if syntax == "json" and lines[i].rstrip().endswith(",") else ""
        literal = data.draw(st.sampled_from(LITERALS[syntax]), label="literal")
        lines[i] = f"{head}{literal}{tail}\n"
        return "".join(lines)
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    j = data.draw(st.integers(0, len(lines) - 1), label="other line")
    if op == "swap-lines":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "drop-line":
        del lines[i]
    elif op == "duplicate-line":
        lines.insert(j, lines[i])
    else:  # indent
        lines[i] = data.draw(st.sampled_from([" ", "  ", "\t", "    "]), label="indent") + lines[i]
    return "".join(lines)


# ---- Aurora as Python --------------------------------------------------------------------------


def _aurora_ast_mutation(data: st.DataObject, text: str) -> str:
    """Drop, rename or change a keyword argument of a call (``ram = 128*MB``)."""
    tree = ast.parse(text)
    keywords = [k for node in ast.walk(tree) if isinstance(node, ast.Call) for k in node.keywords]
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    ops = ["rename", "drop", "value", "add"]
    op = data.draw(st.sampled_from(ops), label="python op")
    if op == "add":
        call = calls[data.draw(st.integers(0, len(calls) - 1), label="call")]
        note(f"call: {ast.unparse(call)[:80]}")
        name = data.draw(st.sampled_from(VOCABULARY), label="keyword")
        value = ast.parse(data.draw(st.sampled_from(LITERALS["aurora"])), mode="eval").body
        call.keywords.append(ast.keyword(arg=name, value=value))
    else:
        kw = keywords[data.draw(st.integers(0, len(keywords) - 1), label="keyword")]
        note(f"keyword: {ast.unparse(kw)[:80]}")
        if op == "rename":
            kw.arg = _near_miss(data, kw.arg or "x")
        elif op == "drop":
            for call in calls:
                if kw in call.keywords:
                    call.keywords.remove(kw)
        else:
            literal = data.draw(st.sampled_from(LITERALS["aurora"]), label="literal")
            kw.value = ast.parse(literal, mode="eval").body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# ---- the property ------------------------------------------------------------------------------


# Problems of a file as a whole, or of the command line, have no line or field to point at.
WHOLE_FILE = re.compile(
    r"nested too deeply$|^no \[service\], \[group\] or \[job\] table found$"
    r"|^evaluation did not finish|^evaluating the file failed|^(no job|several jobs) match"
    r"|^expected a non-empty list `jobs = "
)


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def check_load(text: str, name: str, **opts: Any) -> LoadedSpec | None:
    """Load ``text``: a LoadedSpec that re-validates, or a UsageError that names the file."""
    try:
        loaded = load_text(text, name, **opts)
    except SpecError as e:
        assert e.errors, "a SpecError without errors"
        for issue in e.errors:
            assert issue.source == name, f"{issue} does not name {name}"
            assert issue.message.strip(), f"{issue} has no message"
            assert issue.line is not None or issue.path or WHOLE_FILE.search(issue.message), (
                f"{issue} says neither line nor field"
            )
        return None
    except UsageError as e:
        assert name in str(e), f"{e} does not name {name}"
        return None
    assert isinstance(loaded, LoadedSpec)
    plain = msgspec.to_builtins(loaded)
    assert msgspec.convert(plain, LoadedSpec) == loaded, "the spec does not survive a round trip"
    assert all(math.isfinite(f) for f in _floats(plain)), "a number of the spec is not finite"
    return loaded


@pytest.mark.parametrize("fmt", sorted(SYNTAXES))
@_settings(200)
@given(data=st.data())
def test_structural_mutations(fmt: str, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(SEEDS[fmt]), label="seed")
    syntax = data.draw(st.sampled_from(SYNTAXES[fmt]), label="syntax")
    tree = copy.deepcopy(seed.data)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        tree = _mutate(data, tree, syntax)
    text = _dump(data, tree, syntax)
    explicit = data.draw(st.booleans(), label="--format")
    given_fmt = (syntax if fmt == "native" else fmt) if explicit else None
    check_load(text, f"fuzzed/{seed.name}.{syntax}", fmt=given_fmt)


def _text_seeds() -> list[tuple[str, str, str, str]]:
    """(name, format, syntax, text) of every structured seed in every syntax it may use."""
    out = []
    for fmt, seeds in SEEDS.items():
        for seed in seeds:
            data = _encode_extra(seed.data)
            for syntax in SYNTAXES[fmt]:
                if seed.text is not None and seed.name.endswith(f".{syntax}"):
                    text = seed.text
                elif syntax == "json":
                    text = json.dumps(data, indent=2, ensure_ascii=False)
                elif syntax == "yaml":
                    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
                else:
                    text = tomlw.dumps(data)
                out.append((f"{seed.name}.{syntax}", fmt, syntax, text))
    return out


TEXT_SEEDS = _text_seeds()


@_settings(300)
@given(data=st.data())
def test_text_mutations(data: st.DataObject) -> None:
    name, fmt, syntax, text = data.draw(st.sampled_from(TEXT_SEEDS), label="seed")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        text = _text_mutation(data, text, syntax)
    how = data.draw(st.sampled_from(["detect", "detect", "--format", "no extension"]))
    if how == "no extension":  # detection by content only, as for stdin
        check_load(text, f"fuzzed/{name}.txt")
    else:
        given_fmt = (syntax if fmt == "native" else fmt) if how == "--format" else None
        check_load(text, f"fuzzed/{name}", fmt=given_fmt)


@_settings(25)
@given(data=st.data())
def test_aurora_mutations(data: st.DataObject) -> None:
    need_pystachio()
    seed = data.draw(st.sampled_from(AURORA), label="seed")
    text = (DATA / seed).read_text(encoding="utf-8")
    if data.draw(st.booleans(), label="as python"):
        text = _aurora_ast_mutation(data, text)
    else:
        text = _text_mutation(data, text, "aurora")
    check_load(text, f"fuzzed/{seed}", **OPTIONS.get(seed, {}))


def test_seeds_load() -> None:
    """The seeds themselves load, in every syntax the property writes them in."""
    assert {fmt for fmt, seeds in SEEDS.items() if seeds} == set(SYNTAXES)
    for name, fmt, _syntax, text in TEXT_SEEDS:
        loaded = check_load(text, name)
        assert loaded is not None and loaded.format == fmt, name
