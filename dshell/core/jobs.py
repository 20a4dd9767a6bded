"""Batch job verbs as functions: listing fans out; the rest goes through ``job_call``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backend import Capability, require
from ..errors import UsageError
from .fanout import Fanned, fan_out, target_mounts

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..model import Job
    from ..session import Session
    from ..specs.model import BatchJobSpec, LoadedSpec


def ls(session: Session, path: str | None) -> Fanned[Job]:
    def call(backend: Backend, mount: Mount) -> list[Job]:
        require(backend, Capability.JOBS, "job ls")
        return backend.list_jobs()

    return fan_out(session, target_mounts(session, path), call)


def locate(session: Session, name: str, on: str | None = None) -> tuple[Mount, Backend, str]:
    """A job by NAME in ``on`` (else the current mount, else /local), or by /MOUNT/jobs/NAME."""
    from .launch import launch_mount

    if name.startswith("/") and on is None:
        from ..namespace import resolve

        res = resolve(session.mounts(), name)
        if res.mount is not None:
            parts = res.parts
            if len(parts) != 2 or parts[0] != "jobs":
                raise UsageError(f"{name}: not a job path (expected /MOUNT/jobs/NAME)")
            return res.mount, session.backend(res.mount), parts[1]
    mount = launch_mount(session, on)
    return mount, session.backend(mount), name.strip("/")


def call(session: Session, verb: str, name: str, **params: Any) -> Any:
    mount, backend, job_name = locate(session, name)
    require(backend, Capability.JOBS, f"job {verb}")
    result = backend.job_call(verb, job_name, **params)
    if verb in ("show", "rm", "pause", "resume"):
        result.mount = mount.target
    return result


def create(
    session: Session, on: str | None, specs: list[BatchJobSpec], *, replace: bool = False
) -> list[Job]:
    """Send every job at once: the backend validates all before it stores any."""
    from .launch import launch_mount

    mount = launch_mount(session, on)
    backend = session.backend(mount)
    require(backend, Capability.JOBS, "job create")
    jobs: list[Job] = backend.job_call("create", "-", jobs=specs, replace=replace)
    for job in jobs:
        job.mount = mount.target
    return jobs


def load_jobs(
    path: str,
    fmt: str | None = None,
    bind: dict[str, str] | None = None,
    job_key: str | None = None,
    stdin: Any = None,
) -> LoadedSpec:
    """A spec file (native, Chronos, Metronome, Aurora; ``-`` is ``stdin``) holding jobs;
    SpecError (USAGE) names file, line and field."""
    from ..specs import load_file

    loaded = load_file(path, fmt=fmt, bind=bind, job_key=job_key, stdin=stdin)
    services = [s.name for s in loaded.all_services()]
    if services:
        raise UsageError(
            f"{path}: holds services ({', '.join(services)}); deploy them with `svc deploy -f`"
        )
    if not loaded.jobs:
        raise UsageError(f"{path}: no job in this file")
    return loaded
