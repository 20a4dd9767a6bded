"""The local backend (the embedded engine) passes the backend contract, on a real engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dshell.backend import Mount
from dshell.testing.contract import BackendContract

from dshell_local.backend import LocalBackend


class TestLocalContract(BackendContract):
    @pytest.fixture
    def backend(self, engine) -> Iterator[LocalBackend]:
        b = LocalBackend(Mount(target="/local", type="local", source="localhost"))
        yield b
        b.close()
