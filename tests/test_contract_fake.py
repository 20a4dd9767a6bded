"""The fake backend passes the backend contract (as every backend must)."""

from __future__ import annotations

import pytest
from dshell.backend import Capability, Mount
from dshell.testing.contract import BackendContract
from dshell.testing.fake import FakeBackend


class TestFakeContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path):
        return FakeBackend(
            Mount(target="/f", type="fake", options={"state": str(tmp_path / "s.json")})
        )

    @pytest.fixture
    def long_command(self):
        return ["sleep", "300"]

    @pytest.fixture
    def failing_command(self):
        return ["exit", "3"]


class TestReadOnlyFakeContract(BackendContract):
    """A backend that only lists: every other capability must be UNSUPPORTED."""

    @pytest.fixture
    def backend(self, tmp_path):
        b = FakeBackend(
            Mount(
                target="/r",
                type="fake",
                options={"state": str(tmp_path / "s.json"), "caps": "tasks,agents"},
            )
        )
        assert b.capabilities == {Capability.TASKS, Capability.AGENTS}
        return b
