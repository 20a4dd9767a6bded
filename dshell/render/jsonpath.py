"""``-o jsonpath=EXPR`` over the JSON form of the output (jsonpath-ng, imported lazily)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import UsageError


def select(data: Any, expr: str) -> list[str]:
    """Each match on its own line: scalars as text, objects and lists as compact JSON."""
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext import parse

    # kubectl-style {.items[*].id} braces are accepted and stripped.
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("."):
        text = "$" + text
    try:
        path = parse(text)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        # jsonpath-ng raises plain Exception subclasses from its lexer; name the expression.
        raise UsageError(f"bad jsonpath expression {expr!r}: {exc}") from exc
    out = []
    for match in path.find(data):
        value = match.value
        out.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return out
