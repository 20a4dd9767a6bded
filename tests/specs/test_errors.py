"""Error golden tests: each bad file gives every one of its errors as file:line: field: message."""

from __future__ import annotations

import pytest
from dshell.errors import ExitCode, UsageError
from dshell.specs import SpecError, load_text

from .helpers import BAD, check_golden, need_pystachio

FILES = sorted(p.name for p in BAD.iterdir() if p.is_file())


def _errors(name: str) -> SpecError:
    path = BAD / name
    with pytest.raises(UsageError) as info:
        load_text(path.read_text(encoding="utf-8"), name, path=str(path))
    assert isinstance(info.value, SpecError)
    return info.value


@pytest.mark.parametrize("name", FILES)
def test_error_golden(name: str) -> None:
    need_pystachio(name)
    error = _errors(name)
    assert error.code == ExitCode.USAGE
    for issue in error.errors:
        assert issue.source == name
    check_golden(f"errors/{name}.txt", str(error) + "\n")


def test_every_error_names_a_line_and_a_field() -> None:
    need_pystachio()
    for name in FILES:
        for issue in _errors(name).errors:
            assert issue.line, f"{name}: no line for {issue}"


def test_all_errors_of_a_file_are_collected() -> None:
    assert len(_errors("checks.toml").errors) >= 10
