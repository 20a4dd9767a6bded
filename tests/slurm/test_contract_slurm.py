"""The Slurm backend passes the backend contract, locally and through an SSH login node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dshell.testing.contract import BackendContract

from dshell_slurm.backend import SlurmBackend

from .conftest import SshLogin, local_mount, ssh_mount


class TestSlurmContract(BackendContract):
    @pytest.fixture
    def backend(
        self, slurm_conf: str, slurm_workdir: str, slurm_state: object
    ) -> Iterator[SlurmBackend]:
        backend = SlurmBackend(local_mount(slurm_conf, slurm_workdir))
        yield backend
        backend.close()


class TestSlurmOverSshContract(BackendContract):
    @pytest.fixture
    def backend(
        self, ssh_login: SshLogin, slurm_conf: str, slurm_workdir: str, slurm_state: object
    ) -> Iterator[SlurmBackend]:
        backend = SlurmBackend(ssh_mount(ssh_login, slurm_conf, slurm_workdir))
        yield backend
        backend.close()
