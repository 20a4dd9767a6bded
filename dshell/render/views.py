"""Column definitions: which fields of each model object a table or tsv shows.

(NamedTuples, not dataclasses: ~100 columns are built at import, on every command's path.)

A column's getter returns the full value for machines (tsv: full ids, RFC 3339 times); the
``human`` flag lets a TTY table show ages and short forms instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple


class Column(NamedTuple):
    header: str
    get: Callable[[Any, bool], str]
    wide: bool = False  # only with -o wide
    align: str = "left"


class View(NamedTuple):
    kind: str  # the `-o name` prefix: task, agent, service…
    columns: tuple[Column, ...]
    ident: Callable[[Any], str]

    def visible(self, wide: bool) -> list[Column]:
        return [c for c in self.columns if wide or not c.wide]


def age(ts: str | None, now: datetime | None = None) -> str:
    """A short age like 5s, 3m, 2h, 4d from an RFC 3339 time."""
    if not ts:
        return "-"
    try:
        then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    secs = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _num(value: float) -> str:
    return f"{value:g}"


def _s(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def field(name: str) -> Callable[[Any, bool], str]:
    return lambda obj, _h: _s(getattr(obj, name, None))


def _time(name: str) -> Callable[[Any, bool], str]:
    def get(obj: Any, human: bool) -> str:
        value = getattr(obj, name, None)
        return age(value) if human else _s(value)

    return get


def _labels(obj: Any, _h: bool) -> str:
    labels = getattr(obj, "labels", None) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def _task_exit(t: Any, _h: bool) -> str:
    if t.signal:
        return f"sig{t.signal}"
    return _s(t.exit_code)


def _task_ports(t: Any, _h: bool) -> str:
    return ",".join(f"{p.name}:{p.port}" if p.name else str(p.port) for p in t.ports) or "-"


def _task_why(t: Any, _h: bool) -> str:
    return _s(t.message or t.reason)


def _task_cmd(t: Any, human: bool) -> str:
    import shlex

    text = t.command[0] if t.shell and t.command else shlex.join(t.command)
    return text[:40] + "…" if human and len(text) > 41 else text or "-"


TASK = View(
    "task",
    (
        Column("MOUNT", field("mount")),
        Column("ID", field("id")),
        Column("NAME", field("name")),
        Column("STATE", field("state")),
        Column("AGENT", field("agent_id")),
        Column("CPUS", lambda t, _h: _num(t.resources.cpus), align="right"),
        Column("MEM", lambda t, _h: _num(t.resources.mem), align="right"),
        Column("AGE", _time("created_at")),
        Column("EXIT", _task_exit, align="right"),
        Column("HOST", field("hostname"), wide=True),
        Column("PID", field("pid"), wide=True, align="right"),
        Column("ROLE", field("role"), wide=True),
        Column("PORTS", _task_ports, wide=True),
        Column("HEALTH", field("health"), wide=True),
        Column("PARENT", field("parent_task"), wide=True),
        Column("TIER", field("tier"), wide=True),
        Column("PRIO", field("priority"), wide=True, align="right"),
        Column("VOLUMES", lambda t, _h: ",".join(t.volumes) or "-", wide=True),
        Column("LABELS", _labels, wide=True),
        Column("COMMAND", _task_cmd, wide=True),
        Column("REASON", _task_why, wide=True),
    ),
    lambda t: t.id,
)


def _res(attr: str, key: str) -> Callable[[Any, bool], str]:
    return lambda a, _h: _num(getattr(getattr(a, attr), key))


def _attrs(a: Any, _h: bool) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(a.attributes.items())) or "-"


def _reservations(a: Any, _h: bool) -> str:
    per_role = getattr(a, "reservations", None) or {}
    return (
        ",".join(
            f"{role}:cpus={_num(r.cpus)}/mem={_num(r.mem)}"
            + (f"/disk={_num(r.disk)}" if r.disk else "")
            for role, r in sorted(per_role.items())
        )
        or "-"
    )


AGENT = View(
    "agent",
    (
        Column("MOUNT", field("mount")),
        Column("ID", field("id")),
        Column("HOSTNAME", field("hostname")),
        Column("STATE", field("state")),
        Column("CPUS", _res("total", "cpus"), align="right"),
        Column("CPUS_ALLOC", _res("allocated", "cpus"), align="right"),
        Column("MEM", _res("total", "mem"), align="right"),
        Column("MEM_ALLOC", _res("allocated", "mem"), align="right"),
        Column("TASKS", field("tasks"), align="right"),
        Column("ATTRIBUTES", _attrs),
        Column("CPUS_RESERVED", _res("reserved", "cpus"), wide=True, align="right"),
        Column("MEM_RESERVED", _res("reserved", "mem"), wide=True, align="right"),
        Column("RESERVATIONS", _reservations, wide=True),
        Column("CPUS_USED", _res("used", "cpus"), wide=True, align="right"),
        Column("MEM_USED", _res("used", "mem"), wide=True, align="right"),
        Column("DISK", _res("total", "disk"), wide=True, align="right"),
        Column("DISK_ALLOC", _res("allocated", "disk"), wide=True, align="right"),
        Column("DISK_RESERVED", _res("reserved", "disk"), wide=True, align="right"),
        Column(
            "PORTS",
            lambda a, _h: ",".join(f"{lo}-{hi}" for lo, hi in a.port_ranges) or "-",
            wide=True,
        ),
        Column("REASON", field("reason"), wide=True),
    ),
    lambda a: a.id,
)

MAINT = View(
    "maintenance",
    (
        Column("MOUNT", field("mount")),
        Column("AGENT", field("agent")),
        Column("WINDOW", field("id"), align="right"),
        Column("START", field("start")),
        Column("END", field("end")),
        Column("STATE", field("state")),
        Column("AGENT_STATE", field("agent_state")),
        Column("HOSTNAME", field("hostname"), wide=True),
        Column("DURATION", lambda w, _h: _num(w.duration), wide=True, align="right"),
    ),
    lambda w: f"{w.agent}/{w.id}",
)


def _limit(kind: str) -> Callable[[Any, bool], str]:
    return lambda q, _h: _num(q.limits[kind]) if kind in q.limits else "-"


QUOTA = View(
    "quota",
    (
        Column("MOUNT", field("mount")),
        Column("ROLE", field("role")),
        Column("WEIGHT", lambda q, _h: _num(q.weight), align="right"),
        Column("CPUS", _limit("cpus"), align="right"),
        Column("CPUS_ALLOC", _res("allocated", "cpus"), align="right"),
        Column("MEM", _limit("mem"), align="right"),
        Column("MEM_ALLOC", _res("allocated", "mem"), align="right"),
        Column("PENDING", field("pending"), align="right"),
        Column("DISK", _limit("disk"), wide=True, align="right"),
        Column("DISK_ALLOC", _res("allocated", "disk"), wide=True, align="right"),
        Column("CPUS_RESERVED", _res("reserved", "cpus"), wide=True, align="right"),
        Column("MEM_RESERVED", _res("reserved", "mem"), wide=True, align="right"),
        Column("SHARE", lambda q, _h: f"{q.share:.3f}", wide=True, align="right"),
    ),
    lambda q: q.role,
)

SERVICE = View(
    "service",
    (
        Column("MOUNT", field("mount")),
        Column("NAME", field("name")),
        Column("STATE", field("state")),
        Column("INSTANCES", field("instances"), align="right"),
        Column("RUNNING", field("running"), align="right"),
        Column("HEALTHY", field("healthy"), align="right"),
        Column("VERSION", field("version")),
        Column("ROLE", field("role"), wide=True),
        Column("CPUS", lambda s, _h: _num(s.resources.cpus), wide=True, align="right"),
        Column("MEM", lambda s, _h: _num(s.resources.mem), wide=True, align="right"),
        Column("LABELS", _labels, wide=True),
    ),
    lambda s: s.name,
)

SERVICE_MEMBER = View(
    "task",
    (
        Column("INSTANCE", field("instance"), align="right"),
        Column("TASK", field("task_id")),
        Column("STATE", field("state")),
        Column("VERSION", field("version")),
        Column("HEALTH", field("health")),
        Column("READY", lambda m, _h: "yes" if m.ready else "no"),
        Column("AGENT", field("agent_id")),
        Column(
            "PORTS",
            lambda m, _h: ",".join(f"{p.name or i}={p.port}" for i, p in enumerate(m.ports)) or "-",
        ),
        Column("STARTED", _time("started_at"), wide=True),
    ),
    lambda m: m.task_id,
)

PLAN = View(
    "service",
    (
        Column("SERVICE", field("service")),
        Column("ACTION", field("action")),
        Column("FROM", field("from_version")),
        Column("TO", field("to_version")),
        Column("INSTANCES", field("instances"), align="right"),
        Column("START", field("start"), align="right"),
        Column("STOP", field("stop"), align="right"),
        Column(
            "PLACEMENT",
            lambda p, _h: ",".join(a or "(no room)" for a in p.placement) or "-",
        ),
        Column("DEPLOYMENT", field("deployment"), wide=True),
        Column("MESSAGE", field("message"), wide=True),
    ),
    lambda p: p.service,
)

ENDPOINT = View(
    "endpoint",
    (
        Column("SERVICE", field("service")),
        Column("INSTANCE", field("instance"), align="right"),
        Column("PORT", field("port_name")),
        Column("ADDRESS", lambda e, _h: e.address),
        Column("READY", lambda e, _h: "yes" if e.ready else "no"),
        Column("TASK", field("task_id"), wide=True),
    ),
    lambda e: e.address,
)

SERVICE_VERSION = View(
    "version",
    (
        Column("VERSION", field("version")),
        Column("CREATED", _time("created_at")),
        Column("CAUSE", field("cause")),
        Column("CURRENT", lambda v, _h: "*" if v.current else ""),
    ),
    lambda v: v.version,
)

DEPLOYMENT = View(
    "deployment",
    (
        Column("ID", field("id")),
        Column("CAUSE", field("cause")),
        Column("FROM", field("from_version")),
        Column("TO", field("version")),
        Column("STATE", field("state")),
        Column("PROGRESS", lambda d, _h: f"{d.step}/{d.total_steps}"),
        Column("FAILURES", field("failures"), align="right"),
        Column("STARTED", _time("started_at")),
        Column("MESSAGE", field("message"), wide=True),
    ),
    lambda d: d.id,
)

VOLUME = View(
    "volume",
    (
        Column("MOUNT", field("mount")),
        Column("NAME", field("name")),
        Column("SIZE", lambda v, _h: _num(v.size), align="right"),
        Column("AGENT", field("agent_id")),
        Column("ROLE", field("role")),
        Column("ATTACHED", lambda v, _h: "yes" if v.attached else "no"),
        Column("TASKS", lambda v, _h: ",".join(v.tasks) or "-"),
        Column("SERVICE", field("service"), wide=True),
        Column("CREATED", _time("created_at"), wide=True),
        Column("PATH", field("path"), wide=True),
    ),
    lambda v: v.name,
)

MOUNT = View(
    "mount",
    (
        Column("SOURCE", field("source")),
        Column("TARGET", field("target")),
        Column("TYPE", field("type")),
        Column(
            "OPTIONS",
            lambda m, _h: ",".join(f"{k}={v}" for k, v in sorted(m.options.items())) or "-",
        ),
    ),
    lambda m: m.target,
)

FILE = View(
    "file",
    (
        Column("NAME", field("name")),
        Column("KIND", field("kind")),
        Column("SIZE", field("size"), align="right"),
        Column("MTIME", _time("mtime")),
        Column("DETAIL", field("detail")),
        Column("MODE", field("mode"), wide=True),
    ),
    lambda f: f.name,
)

STATS = View(
    "task",
    (
        Column("MOUNT", field("mount")),
        Column("ID", field("task_id")),
        Column("NAME", field("name")),
        Column("AGENT", field("agent_id")),
        Column("CPU%", lambda s, _h: f"{s.cpu_percent:.1f}", align="right"),
        Column("RSS_MIB", lambda s, _h: f"{s.rss:.1f}", align="right"),
        Column("CPUS_ALLOC", lambda s, _h: _num(s.allocated.cpus), align="right"),
        Column("MEM_ALLOC", lambda s, _h: _num(s.allocated.mem), align="right"),
        Column("PROCS", field("processes"), align="right"),
        Column("PARENT", field("parent_task"), wide=True),
    ),
    lambda s: s.task_id,
)


def _event_object(e: Any, _h: bool) -> str:
    obj = e.task or e.agent or e.service
    return _s(getattr(obj, "id", None) or getattr(obj, "name", None))


def _event_state(e: Any, _h: bool) -> str:
    obj = e.task or e.agent or e.service
    return _s(getattr(obj, "state", None))


EVENT = View(
    "event",
    (
        Column("SEQ", field("seq"), align="right"),
        Column("AT", field("at")),
        Column("MOUNT", field("mount")),
        Column("TYPE", field("type")),
        Column("OBJECT", _event_object),
        Column("STATE", _event_state),
        Column("MESSAGE", field("message"), wide=True),
    ),
    lambda e: str(e.seq),
)

HISTORY = View(
    "state",
    (
        Column("AT", field("at")),
        Column("STATE", field("state")),
        Column("REASON", field("reason")),
        Column("MESSAGE", field("message")),
    ),
    lambda h: h.state,
)


def _list(name: str) -> Callable[[Any, bool], str]:
    return lambda obj, _h: ",".join(getattr(obj, name, None) or []) or "-"


def _next_run(j: Any, human: bool) -> str:
    if not j.next_runs:
        return "-"
    return j.next_runs[0] if not human else j.next_runs[0].replace("T", " ").removesuffix("Z")


def _duration(r: Any, _h: bool) -> str:
    return "-" if r.duration is None else f"{r.duration:.3g}s"


def _run_exit(r: Any, _h: bool) -> str:
    if r.signal:
        return f"sig{r.signal}"
    return _s(r.exit_code)


JOB = View(
    "job",
    (
        Column("MOUNT", field("mount")),
        Column("NAME", field("name")),
        Column("STATE", field("state")),
        Column("SCHEDULE", _list("schedules")),
        Column("NEXT", _next_run),
        Column("AFTER", _list("parents")),
        Column("OK", field("success_count"), align="right"),
        Column("ERR", field("error_count"), align="right"),
        Column("LAST SUCCESS", _time("last_success")),
        Column("LAST FAILURE", _time("last_failure")),
        Column("POLICY", field("concurrency_policy"), wide=True),
        Column("RETRIES", field("retries"), wide=True, align="right"),
        Column("TIMEOUT", field("timeout"), wide=True, align="right"),
        Column("COMMAND", lambda j, _h: " ".join(j.command) or "-", wide=True),
    ),
    lambda j: j.name,
)

JOB_RUN = View(
    "run",
    (
        Column("JOB", field("job")),
        Column("RUN", field("run"), align="right"),
        Column("STATE", field("state")),
        Column("CAUSE", field("cause")),
        Column("STARTED", _time("started_at")),
        Column("DURATION", _duration, align="right"),
        Column("ATTEMPTS", field("attempts"), align="right"),
        Column("EXIT", _run_exit, align="right"),
        Column("MESSAGE", field("message")),
        Column("DUE", field("due_at"), wide=True),
        Column("FINISHED", field("finished_at"), wide=True),
        Column("TASK", field("task_id"), wide=True),
    ),
    lambda r: f"{r.job}/{r.run}",
)
