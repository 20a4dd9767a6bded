"""The listing's columns (``squeue --Format``, :data:`dshell_slurm.early.LISTING_COLUMNS`) read
back into job records shaped as ``squeue --json`` (22.05) prints them, so that one parser
(:func:`dshell_slurm.parse.job_to_task`) makes tasks of either.

The Reason column is the reason's code ("Priority", "JobHeldUser"), except that squeue prints
the job's state description instead when it has one ("ReqNodeNotAvail, UnavailableNodes:n1"),
where ``--json`` has both. Such a record is marked (:data:`DESCRIBED`): the caller asks
``squeue --json`` for those jobs only and takes the two fields from it (:func:`describe`).

A line is trusted only whole: every field ends with the separator, so a line must split into
exactly one part per column plus an empty one. A value holding the separator or a newline (a
job name or comment can hold anything) breaks that count, and :func:`parse` then returns None:
the caller asks ``squeue --json``, which says the same thing unambiguously.
"""

from __future__ import annotations

from typing import Any

from .early import LISTING_COLUMNS, SEP

_KEYS = tuple(key for _field, key in LISTING_COLUMNS)
_PARTS = len(_KEYS) + 1
_NUMBERS = frozenset(
    {"job_id", "array_job_id", "array_task_id", "cpus", "submit_time", "start_time", "end_time"}
)
_TEXTS = tuple(k for k in _KEYS if k not in _NUMBERS and k != "exit_code")
#: What squeue prints for unset text where ``--json`` has an empty string ("(null)" comments,
#: commands, accounts; a pending job's "n/a" batch host). Numbers and times that are not
#: digits ("N/A", "Unknown") are unset too.
_UNSET = {key: frozenset({"(null)"}) for key in _TEXTS} | {
    "batch_host": frozenset({"(null)", "n/a"})
}


#: The mark of a record whose Reason column held a state description (see the docstring).
DESCRIBED = "_described"


def _is_code(reason: str) -> bool:
    return reason.replace("_", "").isalnum() or not reason


def parse(data: bytes) -> list[dict[str, Any]] | None:
    """Job records from the listing's output; None if a line does not split into exactly the
    listing's columns (see the module docstring)."""
    jobs = []
    for line in data.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        parts = line.split(SEP)
        if len(parts) != _PARTS or parts[-1]:
            return None
        job: dict[str, Any] = dict(zip(_KEYS, parts, strict=False))
        for key in _NUMBERS:
            value = job[key]
            job[key] = int(value) if value.isdigit() else None
        for key, unset in _UNSET.items():
            if job[key] in unset:
                job[key] = ""
        job["exit_code"] = _exit_code(job["exit_code"])
        if job["array_task_id"] is None:  # not an array element: --json says 0
            job["array_job_id"] = 0
        if not _is_code(job["state_reason"]):
            job[DESCRIBED] = True
        jobs.append(job)
    return jobs


def described(jobs: list[dict[str, Any]]) -> list[str]:
    """The job ids whose records need their reason and description from ``--json``."""
    return sorted({str(j["job_id"]) for j in jobs if j.get(DESCRIBED)})


def describe(jobs: list[dict[str, Any]], full: list[dict[str, Any]]) -> None:
    """Take the reason code and state description of the marked records from ``--json``
    records of the same jobs (``full``); a job missing there (it ended meanwhile) keeps the
    description it was listed with, as its description."""
    by_id = {j.get("job_id"): j for j in full if isinstance(j, dict)}
    for job in jobs:
        if job.pop(DESCRIBED, False):
            other = by_id.get(job["job_id"])
            if other is None:
                job["state_reason"], job["state_description"] = "", job["state_reason"]
            else:
                job["state_reason"] = other.get("state_reason")
                job["state_description"] = other.get("state_description")


def _exit_code(value: str) -> int | dict[str, Any] | None:
    """22.05 prints the raw wait status (``768``: exit 3; ``9``: SIGKILL); ``code:signal``
    is read as the exit-code object of newer releases."""
    if value.isdigit():
        return int(value)
    code, sep, sig = value.partition(":")
    if sep and code.isdigit() and sig.isdigit():
        status = ["SIGNALED"] if int(sig) else []
        return {"return_code": int(code), "signal": {"id": int(sig)}, "status": status}
    return None
