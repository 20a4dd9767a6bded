"""Decoding the tools' JSON quickly: ``squeue --json`` prints ~3 KB per job, most of it unused.

:func:`jobs` decodes only the fields the parsers read (msgspec skips the rest without building
objects for them: about twice as fast as a full decode of a 500-job document), and falls back
to a full decode if a future Slurm reshapes the document.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Job(msgspec.Struct, gc=False):
    """The job fields :mod:`dshell_slurm.parse` reads (any JSON type: shapes vary by release),
    in the order ``squeue --json`` prints them: msgspec matches each key against the field
    after the last one it found first, so the same order saves a search per key."""

    account: Any = None
    array_job_id: Any = None
    array_task_id: Any = None
    array_task_string: Any = None
    batch_host: Any = None
    command: Any = None
    comment: Any = None
    end_time: Any = None
    exit_code: Any = None
    job_id: Any = None
    job_state: Any = None
    name: Any = None
    nodes: Any = None
    cpus: Any = None
    partition: Any = None
    memory_per_node: Any = None
    memory_per_cpu: Any = None
    start_time: Any = None
    state_description: Any = None
    state_reason: Any = None
    standard_error: Any = None
    standard_output: Any = None
    submit_time: Any = None
    tres_req_str: Any = None
    tres_alloc_str: Any = None
    user_name: Any = None
    current_working_directory: Any = None
    node_names: Any = None  # not in 22.05


class _Jobs(msgspec.Struct):
    jobs: list[_Job] = []
    errors: Any = None


_DECODER = msgspec.json.Decoder(_Jobs)


def document(data: bytes) -> dict[str, Any]:
    """A whole ``--json`` document; ValueError if it is not a JSON object."""
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    return doc


def jobs(data: bytes) -> dict[str, Any]:
    """A ``squeue --json`` document with only the job fields the parsers use."""
    try:
        slim = _DECODER.decode(data)
    except msgspec.ValidationError:
        return document(data)  # an unexpected shape: decode everything, parse tolerantly
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from exc
    return {"jobs": [msgspec.structs.asdict(j) for j in slim.jobs], "errors": slim.errors or []}
