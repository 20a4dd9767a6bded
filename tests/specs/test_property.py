"""Property tests: mutated specs of every format load cleanly or fail with a UsageError.

Starting from the valid files in data/, hypothesis drops keys, swaps values for random ones of
any type, and truncates the text. Whatever it makes, the loaders must either return a
LoadedSpec or raise dshell's UsageError: never another exception.
"""

from __future__ import annotations

import json
import os
import tomllib
from typing import Any

import pytest
import yaml
from dshell.errors import UsageError
from dshell.specs import LoadedSpec, load_text, tomlw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import DATA, need_pystachio

STRUCTURED = sorted(p.name for p in DATA.iterdir() if p.suffix in (".json", ".toml", ".yaml"))
# More examples for a deeper local run: DSHELL_SPEC_EXAMPLES=600 pytest tests/specs
EXAMPLES = int(os.environ.get("DSHELL_SPEC_EXAMPLES", "60"))
AURORA = sorted(p.name for p in DATA.iterdir() if p.suffix == ".aurora")


def _scalars(toml: bool) -> st.SearchStrategy[Any]:
    base = st.one_of(
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=12),
        st.sampled_from(["", "0", "HTTP", "UNIQUE", "/x"]),
    )
    return base if toml else st.one_of(base, st.none())


def _values(toml: bool) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(toml),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=6,
    )


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(data: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    if not path:
        return value if op == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if op == "drop":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


def _parse(name: str, text: str) -> Any:
    if name.endswith(".toml"):
        return tomllib.loads(text)
    if name.endswith(".yaml"):
        return yaml.safe_load(text)
    return json.loads(text)


def _dump(name: str, data: Any) -> str:
    if name.endswith(".toml"):
        return tomlw.dumps(data) if isinstance(data, dict) else ""
    if name.endswith(".yaml"):
        return yaml.safe_dump(data)
    return json.dumps(data)


def _load(text: str, name: str) -> None:
    need_pystachio(name)
    try:
        result = load_text(
            text,
            name,
            bind={"version": "1"},
            job_key="local/alice/prod/api" if name == "profiles.aurora" else None,
            timeout=5.0,
        )
    except UsageError:
        return
    assert isinstance(result, LoadedSpec)


@pytest.mark.parametrize("name", STRUCTURED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_structured_specs(name: str, data: st.DataObject) -> None:
    original = (DATA / name).read_text(encoding="utf-8")
    tree = _parse(name, original)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(tree)
        path = data.draw(st.sampled_from(paths), label="path")
        op = data.draw(st.sampled_from(["drop", "replace"]) if path else st.just("replace"))
        if name.endswith(".toml") and not path:
            continue  # a TOML document is always a table
        value = data.draw(_values(name.endswith(".toml")), label="value")
        tree = _mutate(tree, path, op, value)
    _load(_dump(name, tree), name)


@pytest.mark.parametrize("name", [*STRUCTURED, *AURORA])
@settings(max_examples=25, deadline=None)
@given(cut=st.floats(0, 1))
def test_truncated_text(name: str, cut: float) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    if name.endswith(".aurora") and cut < 0.5:
        cut = 1 - cut  # keep the evaluator count low: the first half rarely parses anyway
    _load(text[: int(len(text) * cut)], name)


@pytest.mark.parametrize("name", AURORA)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_mutated_aurora(name: str, data: st.DataObject) -> None:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    op = data.draw(st.sampled_from(["drop", "replace-number", "insert"]), label="op")
    if op == "drop":
        del lines[index]
    elif op == "replace-number":
        junk = data.draw(st.sampled_from(["'x'", "None", "-1", "1e400", "[]", "{}"]))
        lines[index] = "".join(junk if c.isdigit() else c for c in lines[index])
    else:
        lines.insert(
            index,
            data.draw(
                st.sampled_from(
                    ["jobs = 3", "jobs = [1]", "import os", "x = 1/0", "Resources = None"]
                )
            ),
        )
    _load("\n".join(lines) + "\n", name)
