"""Pure parsers for accounting: ``sacct --json`` records → dshell tasks, and whether a cluster
has accounting at all (``scontrol show config``).

A sacct record is first reshaped into the squeue job shape (:func:`to_job`), then parsed by
:func:`dshell_slurm.parse.job_to_task`, so both sources share one state table and one set of
field rules. Tolerant of the 22.05 format (``openapi/dbv0.0.38``: plain numbers, string
states) and the newer ones (``data_parser/v0.0.39+``: ``{"set", "infinite", "number"}``
numbers, list states, ``stdout``/``stderr`` paths, ``submit_line``); unknown fields are ignored
and missing ones default.

Slurm 22.05's sacct JSON reports every non-zero exit code as ``{"status": "SUCCESS",
"return_code": 0}`` (its text output is right: ``3:0``; see the golden capture): a FAILED job
with a "successful" exit is marked unknown here (:data:`UNRELIABLE`), and the backend asks
sacct's text format for those jobs (:func:`parse_exit_codes`).
"""

from __future__ import annotations

from typing import Any

from dshell.model import Task

from .parse import inum, job_state, jobs_to_tasks, num, text, tokens

#: exit_code value for a record whose real exit code sacct's JSON lost (22.05)
UNRELIABLE: dict[str, Any] = {"status": "UNKNOWN"}
#: ``sacct --format`` of the text query that recovers those exit codes
EXIT_FORMAT = "JobID,ExitCode"


def accounting_enabled(config: str) -> bool:
    """Whether ``scontrol show config`` names an accounting storage other than ``none``."""
    for line in config.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "accountingstoragetype":
            value = value.strip().lower()
            return bool(value) and not value.endswith("/none") and value != "(null)"
    return False


def _tres(items: Any) -> str:
    """sacct's TRES list ``[{"type": "cpu", "count": 2}, …]`` → ``cpu=2,mem=128M,…``."""
    if isinstance(items, str):
        return items
    parts = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind, count = text(item.get("type")), num(item.get("count"))
        if count is None or not kind:
            continue
        if kind == "gres" and text(item.get("name")):
            kind = f"gres/{text(item.get('name'))}"
        parts.append(f"{kind}={int(count)}{'M' if kind == 'mem' else ''}")
    return ",".join(parts)


def _exit_code(job: dict[str, Any]) -> Any:
    """The job's exit status; the batch step's signal when the job's own says nothing."""
    code = job.get("exit_code")
    current = job.get("state")
    state = job_state(current.get("current") if isinstance(current, dict) else current)[2]
    if isinstance(code, dict):
        status = tokens(code.get("status"))
        zero = not inum(code.get("return_code")) and "SIGNALED" not in status
        if zero and state in ("FAILED", "OUT_OF_MEMORY") and "SUCCESS" in status:
            return UNRELIABLE  # 22.05: a non-zero exit printed as SUCCESS 0
        if zero:
            for step in job.get("steps") or []:
                if not isinstance(step, dict) or not isinstance(step.get("step"), dict):
                    continue
                step_code = step.get("exit_code")
                if (
                    text(step["step"].get("name")) == "batch"
                    and isinstance(step_code, dict)
                    and "SIGNALED" in tokens(step_code.get("status"))
                ):
                    return step_code  # a cancelled job: the signal that ended it
    return code


def _comment(value: Any) -> str:
    if isinstance(value, dict):  # {"administrator", "job", "system"}
        return text(value.get("job"))
    return text(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def to_job(rec: dict[str, Any]) -> dict[str, Any]:
    """One sacct job record in the squeue job shape :mod:`dshell_slurm.parse` reads."""
    array, times, state = _dict(rec.get("array")), _dict(rec.get("time")), _dict(rec.get("state"))
    tres = _dict(rec.get("tres"))
    nodes = text(rec.get("nodes"))
    if nodes in ("None assigned", "(null)"):
        nodes = ""
    array_job = inum(array.get("job_id")) or 0
    task = inum(array.get("task_id")) if array_job else None
    remainder = text(array.get("task")).strip("[]") if array_job and task is None else ""
    job: dict[str, Any] = {
        "job_id": rec.get("job_id"),
        "array_job_id": array_job,
        "array_task_id": task,
        "array_task_string": remainder,
        "name": rec.get("name"),
        "job_state": state.get("current") if state else rec.get("state"),
        "state_reason": state.get("reason"),
        "exit_code": _exit_code(rec),
        "nodes": nodes,
        "batch_host": nodes.split(",")[0] if nodes and "[" not in nodes else "",
        "comment": _comment(rec.get("comment")),
        "user_name": rec.get("user"),
        "partition": rec.get("partition"),
        "account": rec.get("account"),
        "command": rec.get("submit_line") or "",
        "tres_alloc_str": _tres(tres.get("allocated")),
        "tres_req_str": _tres(tres.get("requested")),
        "submit_time": times.get("submission"),
        "start_time": times.get("start"),
        "end_time": times.get("end"),
        "current_working_directory": rec.get("working_directory"),
    }
    for key in ("stdout", "stderr"):  # 23.02+; 24.05 also prints them expanded
        path = text(rec.get(f"{key}_expanded")) or text(rec.get(key))
        if path:
            job[f"standard_{'output' if key == 'stdout' else 'error'}"] = path
    return job


def sacct_jobs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every job record of a ``sacct --json`` document, in the squeue shape."""
    return [to_job(r) for r in doc.get("jobs") or [] if isinstance(r, dict)]


def sacct_to_tasks(doc: dict[str, Any], *, raw: bool = False) -> list[Task]:
    """Tasks of a ``sacct --json`` document (``raw`` keeps the reshaped record)."""
    return jobs_to_tasks({"jobs": sacct_jobs(doc)}, raw=raw)


def needs_exit_codes(jobs: list[dict[str, Any]]) -> list[str]:
    """Ids (``1234`` / ``1234_5``) of terminal records whose exit code sacct's JSON lost."""
    from .parse import task_id

    return [task_id(j) for j in jobs if j.get("exit_code") is UNRELIABLE]


def parse_exit_codes(output: str) -> dict[str, tuple[int, int]]:
    """``sacct -X --noheader --parsable2 --format=JobID,ExitCode`` → {id: (code, signal)}."""
    out: dict[str, tuple[int, int]] = {}
    for line in output.splitlines():
        jid, sep, exit_code = line.strip().partition("|")
        code, colon, sig = exit_code.partition(":")
        if sep and colon and code.isdigit() and sig.isdigit() and "." not in jid:
            out[jid] = (int(code), int(sig))
    return out


def fix_exit_codes(jobs: list[dict[str, Any]], codes: dict[str, tuple[int, int]]) -> None:
    """Put the exit codes recovered from sacct's text back into reshaped records (in place)."""
    from .parse import task_id

    for job in jobs:
        if job.get("exit_code") is UNRELIABLE:
            found = codes.get(task_id(job))
            job["exit_code"] = None if found is None else (found[0] << 8) | (found[1] & 0x7F)
