"""The line language (dshell/lexer.py): golden cases, round trips, partial lines."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from dshell.errors import ExitCode
from dshell.lexer import LexError, join, parse, partial, quote
from hypothesis import given
from hypothesis import strategies as st

GOLDEN = Path(__file__).parent / "golden" / "lexer" / "cases.txt"
UPDATE = os.environ.get("DSHELL_UPDATE_GOLDEN") == "1"


@dataclass
class Case:
    line: str
    expected: str  # "out: …" or "err: …"
    index: int  # line index of the expectation in the file


def load_cases() -> tuple[list[str], list[Case]]:
    lines = GOLDEN.read_text(encoding="utf-8").split("\n")
    cases: list[Case] = []
    pending: str | None = None
    for i, raw in enumerate(lines):
        if raw.startswith("in: ") or raw == "in:":
            pending = raw[4:]
        elif raw.startswith("injson: "):
            pending = json.loads(raw[8:])
        elif raw.startswith(("out: ", "err: ")):
            assert pending is not None, f"{GOLDEN}:{i + 1}: expectation without input"
            cases.append(Case(pending, raw, i))
            pending = None
    return lines, cases


def render(line: str) -> str:
    """The structure of a parsed line in the golden notation."""
    try:
        pipelines = parse(line)
    except LexError as exc:
        return f"err: {exc.column}: {exc.reason}"
    data = [
        [{"system": list(c.argv)} if c.system else list(c.argv) for c in p.commands]
        for p in pipelines
    ]
    return "out: " + json.dumps(data, ensure_ascii=False)


_, CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[repr(c.line)[1:-1][:40] for c in CASES])
def test_golden(case: Case) -> None:
    assert render(case.line) == case.expected, (
        f"{GOLDEN}:{case.index + 1}: input {case.line!r}; to accept the new behaviour run "
        "DSHELL_UPDATE_GOLDEN=1 python -m pytest tests/test_lexer.py and review the diff"
    )


def test_golden_file_is_current() -> None:
    """With DSHELL_UPDATE_GOLDEN=1, rewrite the expectations from the lexer."""
    lines, cases = load_cases()
    assert len(cases) >= 50
    if UPDATE:
        for case in cases:
            lines[case.index] = render(case.line)
        GOLDEN.write_text("\n".join(lines), encoding="utf-8")


def test_errors_are_usage_errors_with_a_column() -> None:
    with pytest.raises(LexError) as info:
        parse("ps | grep 'web")
    assert info.value.code is ExitCode.USAGE
    assert info.value.column == 11
    assert info.value.message == "syntax error at column 11: unterminated single quote"


def test_command_columns() -> None:
    (p,) = parse("ps -q |  kill -")
    assert [c.column for c in p.commands] == [1, 10]


words = st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6)


@given(words)
def test_join_round_trips(argv: list[str]) -> None:
    if any("\n" in w or "\r" in w for w in argv):
        argv = [w.replace("\n", "").replace("\r", "") for w in argv]
    (p,) = parse(join(argv))
    assert [list(c.argv) for c in p.commands] == [argv]


@pytest.mark.parametrize(
    ("word", "quoted"),
    [("web.1", "web.1"), ("a b", "'a b'"), ("it's", "'it'\\''s'"), ("", "''"), ("a|b", "'a|b'")],
)
def test_quote(word: str, quoted: str) -> None:
    assert quote(word) == quoted


@pytest.mark.parametrize(
    ("line", "words", "current", "start", "quote_", "system", "in_pipe"),
    [
        ("", (), "", 0, None, False, False),
        ("ps", (), "ps", 0, None, False, False),
        ("ps ", ("ps",), "", 3, None, False, False),
        ("ps --st", ("ps",), "--st", 3, None, False, False),
        ("cd /f; kill w", ("kill",), "w", 12, None, False, False),
        ("ps | kill 'web", ("kill",), "web", 10, "'", False, True),
        ('cat "/f/ta', ("cat",), "/f/ta", 4, '"', False, False),
        ("ps |! gr", (), "gr", 6, None, True, True),
        ("ps | ", (), "", 5, None, False, True),
        ("a\\ b", (), "a b", 0, None, False, False),
    ],
)
def test_partial(line, words, current, start, quote_, system, in_pipe) -> None:
    p = partial(line)
    assert p is not None
    assert (p.words, p.current, p.start, p.quote, p.system, p.in_pipeline) == (
        words,
        current,
        start,
        quote_,
        system,
        in_pipe,
    )


@pytest.mark.parametrize("line", ["ps && ", "ps # a comment", "ps > x"])
def test_partial_gives_up_on_comments_and_errors(line: str) -> None:
    assert partial(line) is None
