"""Derive the newer-Slurm variants of the captured 22.05 documents (run after capture.py).

Slurm 23.02+ (data_parser v0.0.39…v0.0.41, 24.x) changed the JSON the tools print; the
variants apply those changes by hand to the real 22.05 capture, so one golden job set checks
both shapes:

- numbers become ``{"set": bool, "infinite": bool, "number": N}`` (unset array ids too);
- ``job_state`` and node ``state`` become lists of flags (``["IDLE", "DRAIN"]``);
- ``exit_code`` becomes ``{"status": [...], "return_code": {...}, "signal": {...}}``;
- ``nodes`` becomes ``node_names`` on some records, ``batch_host`` and ``state_description``
  disappear, ``features``/``partitions`` become lists, and unknown fields appear;
- extra records for states a loopback cluster cannot produce: OUT_OF_MEMORY, PREEMPTED,
  SUSPENDED, NODE_FAIL and a COMPLETING job.

sacct (from ``sacct-22.05.json``, captured by ``capture_sacct.sh``): the same number objects
(``array.job_id``/``task_id``, times), ``state.current`` as a list, the exit-code object with
the real exit code (22.05 prints non-zero ones as SUCCESS 0), ``stdout``/``stderr`` (23.02+)
and ``stdout_expanded`` (24.05), ``submit_line``, the job comment, unknown fields, and extra
TIMEOUT, OUT_OF_MEMORY and pending-array-remainder records.

    python tests/slurm/golden/make_variants.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NUMBERS = (
    "array_job_id",
    "array_task_id",
    "submit_time",
    "start_time",
    "end_time",
    "cpus",
    "memory_per_node",
    "memory_per_cpu",
    "time_limit",
    "priority",
    "node_count",
)
META = {
    "plugin": {"type": "", "name": "", "data_parser": "data_parser/v0.0.41"},
    "slurm": {"version": {"major": "24", "micro": "3", "minor": "05"}, "release": "24.05.3"},
}
SIGNALS = {9: "KILL", 15: "TERM"}


def number(value: Any) -> dict[str, Any]:
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": value}


def exit_code(raw: int) -> dict[str, Any]:
    sig = raw & 0x7F
    return {
        "status": ["SIGNALED"] if sig else ["SUCCESS" if raw == 0 else "ERROR"],
        "return_code": number(None if sig else raw >> 8),
        "signal": {"id": number(sig if sig else None), "name": SIGNALS.get(sig, "")},
    }


def job(old: dict[str, Any], i: int) -> dict[str, Any]:
    new = copy.deepcopy(old)
    for key in NUMBERS:
        if key in new:
            new[key] = number(new[key])
    new["job_state"] = [old["job_state"]]
    new["exit_code"] = exit_code(old["exit_code"])
    new.pop("state_description", None)
    new.pop("batch_host", None)
    if i % 2:
        new["node_names"] = new.pop("nodes")
    new["job_resources"] = {"nodes": {"count": 1, "list": old["nodes"]}}
    new["hetjob_extra_2099"] = {"anything": [1, 2, 3]}
    return new


def extra(base: dict[str, Any], job_id: int, name: str, state: list[str], reason: str) -> Any:
    new = copy.deepcopy(base)
    new.update(job_id=job_id, name=name, job_state=state, state_reason=reason)
    return new


def squeue() -> None:
    doc = json.loads((HERE / "squeue-22.05.json").read_text())
    jobs = [job(j, i) for i, j in enumerate(doc["jobs"])]
    done = next(j for j in jobs if j["name"] == "completed")
    oom = extra(done, 901, "oom", ["OUT_OF_MEMORY"], "OutOfMemory")
    oom["exit_code"] = exit_code(9)
    jobs += [
        oom,
        extra(done, 902, "preempted", ["PREEMPTED"], "None"),
        extra(done, 903, "suspended", ["SUSPENDED"], "None"),
        extra(done, 904, "nodefail", ["NODE_FAIL"], "NodeDown"),
        extra(done, 905, "completing", ["COMPLETED", "COMPLETING"], "None"),
    ]
    out = {"jobs": jobs, "meta": META, "errors": [], "warnings": [], "last_backfill": number(1)}
    (HERE / "squeue-24.05-variant.json").write_text(json.dumps(out, indent=1) + "\n")


def node(old: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new["state"] = [old["state"].upper(), *old.pop("state_flags", [])]
    for key in ("cpu_load", "free_memory"):
        new[key] = number(old[key])
    new["features"] = [f for f in old["features"].split(",") if f]
    new["active_features"] = new["features"]
    new["energy"] = {"current_watts": number(None)}
    return new


def sinfo() -> None:
    doc = json.loads((HERE / "sinfo-22.05-maint.json").read_text())
    out = {"nodes": [node(n) for n in doc["nodes"]], "meta": META, "errors": [], "warnings": []}
    (HERE / "sinfo-24.05-variant.json").write_text(json.dumps(out, indent=1) + "\n")


def acct_job(old: dict[str, Any], real_exit: dict[str, int]) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new["array"]["job_id"] = number(old["array"]["job_id"])
    new["array"]["task_id"] = number(old["array"]["task_id"])
    new["time"] = {k: number(v) if k in ("start", "end") else v for k, v in old["time"].items()}
    new["state"]["current"] = [old["state"]["current"]]
    raw = real_exit.get(str(old["job_id"]), 0)
    sig = (old["exit_code"].get("signal") or {}).get("signal_id") or 0
    new["exit_code"] = exit_code(sig if sig else raw)
    new["comment"] = {"administrator": "", "job": "", "system": ""}
    if old["name"] == "labelled":
        new["comment"]["job"] = 'dshell-labels={"app":"web","tier":"1"}'
        work = old["working_directory"]
        new["stdout"], new["stderr"] = f"{work}/dshell-%j.out", f"{work}/dshell-%j.err"
        new["stdout_expanded"] = f"{work}/dshell-{old['job_id']}.out"
        new["stderr_expanded"] = f"{work}/dshell-{old['job_id']}.err"
    new["submit_line"] = f"sbatch -J {old['name']}"
    new.pop("derived_exit_code", None)
    new["qos"] = {"name": old.get("qos"), "priority": number(1)}
    new["licenses"] = ""
    return new


def sacct() -> None:
    doc = json.loads((HERE / "sacct-22.05.json").read_text())
    real_exit = {}  # what sacct's text prints (ExitCode code:signal), as a raw wait status
    for line in (HERE / "sacct-22.05.txt").read_text().splitlines():
        jid, _, code = line.partition("|")
        real_exit[jid] = int(code.split(":")[0]) << 8
    jobs = [acct_job(j, real_exit) for j in doc["jobs"]]
    done = next(j for j in jobs if j["name"] == "completed")
    for job_id, name, state, code in (
        (911, "timeout", "TIMEOUT", 15),
        (912, "oom", "OUT_OF_MEMORY", 9),
    ):
        new = copy.deepcopy(done)
        new.update(job_id=job_id, name=name, exit_code=exit_code(code))
        new["state"] = {"current": [state], "reason": "None"}
        jobs.append(new)
    pending = copy.deepcopy(done)
    pending.update(job_id=920, name="remainder")
    pending["array"].update(job_id=number(920), task_id=number(None), task="[3-5]")
    pending["state"] = {"current": ["PENDING"], "reason": "JobArrayTaskLimit"}
    pending["time"].update(start=number(0), end=number(0))
    pending["exit_code"] = exit_code(0)
    jobs.append(pending)
    plugin = {**META["plugin"], "accounting_storage": "accounting_storage/slurmdbd"}
    meta = {**META, "plugin": plugin}
    out = {"jobs": jobs, "meta": meta, "errors": [], "warnings": []}
    (HERE / "sacct-24.05-variant.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    squeue()
    sinfo()
    sacct()
