"""Golden tests: every realistic data file loads to the normalized model stored in golden/."""

from __future__ import annotations

import json

import pytest
from dshell.specs import load_file
from dshell.specs.export import full_dict

from .helpers import DATA, OPTIONS, check_golden, need_pystachio

FILES = sorted(p.name for p in DATA.iterdir() if p.is_file())


def _render(name: str) -> str:
    loaded = load_file(str(DATA / name), **OPTIONS.get(name, {}))  # type: ignore[arg-type]
    data = full_dict(loaded)
    # Paths in messages depend on where the checkout lives: keep the file name only.
    data["source"] = name
    data["warnings"] = [w.replace(str(DATA) + "/", "") for w in data["warnings"]]
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


@pytest.mark.parametrize("name", FILES)
def test_golden(name: str) -> None:
    need_pystachio(name)
    check_golden(f"{name}.json", _render(name))


def test_every_format_is_covered() -> None:
    need_pystachio()
    formats = {
        load_file(str(DATA / n), **OPTIONS.get(n, {})).format  # type: ignore[arg-type]
        for n in FILES
    }
    assert formats == {"native", "marathon", "aurora", "chronos", "metronome"}


def test_toml_and_yaml_give_the_same_spec() -> None:
    toml = load_file(str(DATA / "web.toml"))
    yaml = load_file(str(DATA / "web.yaml"))
    assert full_dict(toml.services) == full_dict(yaml.services)
