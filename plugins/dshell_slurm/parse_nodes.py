"""Pure parsers for nodes (``sinfo --json``) and usage (``sstat --parsable2``).

Same rules as :mod:`dshell_slurm.parse`: tolerant of added, missing and re-shaped fields.
"""

from __future__ import annotations

from typing import Any

from dshell.model import Agent, Resources, TaskStats

from .parse import BACKEND, inum, job_to_task, mib, num, raw_job_id, text, tokens

# ---- nodes → agents ---------------------------------------------------------------------------


def node_state(state: Any, flags: Any = None) -> str:
    """Slurm node state (+ flags) → UP | DRAINING | DRAINED | DOWN. The only node-state table."""
    toks = set(tokens(state)) | set(tokens(flags))
    # NOT_RESPONDING alone is transient (a resumed node until its next ping): not DOWN.
    if toks & {"DOWN", "FAIL", "UNKNOWN", "FUTURE", "INVALID"}:
        return "DOWN"
    if "DRAINED" in toks:
        return "DRAINED"
    if "DRAINING" in toks:
        return "DRAINING"
    if "DRAIN" in toks:
        busy = toks & {"ALLOCATED", "MIXED", "COMPLETING"}
        return "DRAINING" if busy else "DRAINED"
    return "UP"


def _gpus(gres: str) -> float:
    total = 0.0
    for item in filter(None, gres.split(",")):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def node_to_agent(node: dict[str, Any], *, raw: bool = False) -> Agent:
    """One ``sinfo --json`` node → Agent (memory and disk in MiB, as Slurm reports them)."""
    name = text(node.get("name") or node.get("hostname"))
    real = float(num(node.get("real_memory")) or 0)
    free = num(node.get("free_memory"))
    load = num(node.get("cpu_load"))
    features = text(node.get("active_features") or node.get("features"))
    attrs = {
        "features": features,
        "partitions": text(node.get("partitions")),
        "arch": text(node.get("architecture")),
    }
    reason = text(node.get("reason"))
    if not reason and {"NOT_RESPONDING", "NO_RESPOND"} & set(tokens(node.get("state_flags"))):
        reason = "not responding"
    return Agent(
        id=name,
        hostname=text(node.get("hostname")) or name,
        state=node_state(node.get("state"), node.get("state_flags")),
        backend=BACKEND,
        total=Resources(
            cpus=float(num(node.get("cpus")) or 0),
            mem=real,
            disk=float(num(node.get("temporary_disk")) or 0),
            gpus=_gpus(text(node.get("gres"))),
        ),
        allocated=Resources(
            cpus=float(num(node.get("alloc_cpus")) or 0),
            mem=float(num(node.get("alloc_memory")) or 0),
            gpus=_gpus(text(node.get("gres_used"))),
        ),
        used=Resources(
            cpus=(load or 0) / 100.0,
            mem=max(0.0, real - free) if free is not None else 0.0,
        ),
        attributes={k: v for k, v in attrs.items() if v},
        reason=reason or None,
        raw=node if raw else None,
    )


def nodes_to_agents(doc: dict[str, Any], *, raw: bool = False) -> list[Agent]:
    """Every node of a ``sinfo --json`` document, once (sinfo repeats nodes per partition)."""
    seen: dict[str, Agent] = {}
    for node in doc.get("nodes") or []:
        if isinstance(node, dict):
            agent = node_to_agent(node, raw=raw)
            seen.setdefault(agent.id, agent)
    return list(seen.values())


# ---- sstat ------------------------------------------------------------------------------------

SSTAT_FORMAT = "JobID,AveCPU,MaxRSS,NTasks"


def cpu_seconds(value: str) -> float:
    """sstat times: ``[DD-[HH:]]MM:SS[.mmm]`` → seconds (0 if malformed)."""
    days, _, rest = value.strip().rpartition("-")
    parts = rest.split(":")
    try:
        secs = sum(float(p) * 60**i for i, p in enumerate(reversed(parts)))
        return secs + (int(days) * 86400 if days else 0)
    except ValueError:
        return 0.0


def parse_sstat(output: str) -> dict[int, tuple[float, float, int]]:
    """``sstat -a --parsable2 --noheader --format=JobID,AveCPU,MaxRSS,NTasks`` →
    {raw job id: (cpu seconds, rss MiB, processes)} summed over the job's steps."""
    out: dict[int, tuple[float, float, int]] = {}
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 4 or not fields[0]:
            continue
        head = fields[0].split(".")[0].split("_")[0].split("+")[0]
        if not head.isdigit():
            continue
        ntasks = int(fields[3]) if fields[3].isdigit() else 1
        cpu = cpu_seconds(fields[1]) * ntasks
        rss = mib(fields[2]) if fields[2] else 0.0
        old = out.get(int(head), (0.0, 0.0, 0))
        out[int(head)] = (old[0] + cpu, old[1] + rss, old[2] + ntasks)
    return out


def job_stats(
    jobs: list[dict[str, Any]], usage: dict[int, tuple[float, float, int]], now: float
) -> list[TaskStats]:
    """``top`` samples: each job's allocation, with sstat usage (cpu %, RSS) where known."""
    out = []
    for job in jobs:
        task = job_to_task(job)
        cpu, rss, procs = usage.get(raw_job_id(job) or 0, (0.0, 0.0, 0))
        started = inum(job.get("start_time")) or now
        out.append(
            TaskStats(
                task_id=task.id,
                name=task.name,
                agent_id=task.agent_id,
                cpu_percent=round(100.0 * cpu / max(now - started, 1.0), 1),
                rss=rss,
                allocated=task.resources,
                processes=procs,
            )
        )
    return out
