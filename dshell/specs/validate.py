"""Cross-field checks on the normalized model, shared by every format.

Loaders check types and their own format's rules while reading; what remains is checked here,
once, on the model: port references, constraint operators, persistent-volume rules, process
order, schedules, duplicate ids, dependencies and their cycles. Errors point back at the source
through :meth:`Issues.error_at`.
"""

from __future__ import annotations

import itertools
import math
import re

from dshell.constraints import constraint_problem
from dshell.model import MAX_INSTANCES
from dshell.specs import schedule
from dshell.specs.issues import Issues
from dshell.specs.model import (
    BatchJobSpec,
    Constraint,
    HealthCheckSpec,
    ProcessSpec,
    ResourceSpec,
    ServiceSpec,
)

CHECK_PROTOCOLS = ("COMMAND", "HTTP", "HTTPS", "TCP")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
NAME_RE = re.compile(rf"^/?{_NAME}(/{_NAME})*$")
# Chronos allows spaces and '#' in job names.
_JOB_NAME = r"[A-Za-z0-9#][\w\s.#-]*"
JOB_NAME_RE = re.compile(rf"^/?{_JOB_NAME}(/{_JOB_NAME})*$")
PORT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def check_name(obj: object, name: str, issues: Issues, what: str) -> None:
    pattern = JOB_NAME_RE if what == "job" else NAME_RE
    if name and not pattern.match(name):  # a missing name is reported by the loader
        issues.error_at(
            obj,
            "name",
            f"invalid {what} name {name!r}: expected letters, digits,"
            " '.', '_' or '-' (a path like /prod/web for nested ids)",
        )


def check_resources(owner: object, res: ResourceSpec, issues: Issues, *, allow_gpus: bool) -> None:
    for field in ("cpus", "mem", "disk", "gpus"):
        value = getattr(res, field)
        if not math.isfinite(value):
            issues.error_at(res, field, f"expected a finite number, got {value}")
    if res.cpus <= 0:
        issues.error_at(res, "cpus", f"must be greater than 0, got {res.cpus:g}")
    if res.mem <= 0:
        issues.error_at(res, "mem", f"must be greater than 0 (MiB), got {res.mem:g}")
    if res.disk < 0:
        issues.error_at(res, "disk", f"must be 0 or more (MiB), got {res.disk:g}")
    if res.gpus < 0:
        issues.error_at(res, "gpus", f"must be 0 or more, got {res.gpus:g}")
    elif res.gpus > 0 and not allow_gpus:
        issues.error_at(res, "gpus", f"asks for {res.gpus:g} GPU(s), but this machine has none")


def _count(n: int) -> str:
    """An integer as a person reads it: 12,000, or 1e+300 rather than three hundred digits."""
    return f"{n:,}" if abs(n) < 10**12 else f"{float(n):.3g}"


def check_constraint(c: Constraint, issues: Issues) -> None:
    """The constraint as written (the engines' rule: :func:`dshell.constraints.constraint_problem`),
    its first problem reported at the offending part."""
    problem = constraint_problem(c.field, c.operator, c.value)
    if problem is not None:
        issues.error_at(c, problem.field, problem.message)


def _check_port_ref(
    svc: ServiceSpec, hc: HealthCheckSpec, names: list[str], issues: Issues
) -> None:
    chosen = [f for f in ("port_index", "port_name", "port") if getattr(hc, f) is not None]
    if len(chosen) > 1:
        issues.error_at(hc, chosen[1], f"give only one of {' / '.join(chosen)}")
        return
    if not chosen:
        if not svc.ports:
            issues.error_at(
                hc, "protocol", f"a {hc.protocol} check needs a port, and the service defines none"
            )
            return
        hc.port_index = 0  # Marathon's default: the first port
    if hc.port_index is not None:
        if not 0 <= hc.port_index < len(svc.ports):
            span = f"0..{len(svc.ports) - 1}" if svc.ports else "none: no ports are defined"
            issues.error_at(hc, "port_index", f"{hc.port_index} is out of range (valid: {span})")
        elif svc.ports[hc.port_index].name:
            hc.port_name, hc.port_index = svc.ports[hc.port_index].name, None
    elif hc.port_name is not None and hc.port_name not in names:
        issues.error_at(
            hc,
            "port_name",
            f"unknown port {hc.port_name!r}; expected one of: "
            + (", ".join(names) or "(no named ports)"),
        )
    elif hc.port is not None and not 0 < hc.port < 65536:
        issues.error_at(hc, "port", f"must be a port number 1..65535, got {hc.port}")


def check_health(svc: ServiceSpec, hc: HealthCheckSpec, names: list[str], issues: Issues) -> None:
    if hc.protocol not in CHECK_PROTOCOLS:
        issues.error_at(
            hc,
            "protocol",
            f"unknown protocol {hc.protocol!r}; expected one of " + ", ".join(CHECK_PROTOCOLS),
        )
        return
    if hc.protocol == "COMMAND":
        if not hc.command:
            issues.error_at(hc, "command", "a COMMAND check needs a command")
    elif hc.unix_socket is not None:
        if hc.protocol != "HTTP" or not hc.unix_socket.startswith("/"):
            issues.error_at(hc, "unix_socket", "an absolute socket path, for HTTP checks only")
    else:
        _check_port_ref(svc, hc, names, issues)
    if hc.protocol != "COMMAND" and hc.path is not None and not hc.path.startswith("/"):
        issues.error_at(hc, "path", f"must start with '/', got {hc.path!r}")
    for field in ("grace_period", "interval", "timeout", "delay", "max_consecutive_failures"):
        value = getattr(hc, field)
        # max_consecutive_failures is an int, maybe beyond what a float holds: no isfinite().
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            issues.error_at(hc, field, f"must be 0 or more, got {value}")


def check_ports(svc: ServiceSpec, issues: Issues) -> list[str]:
    names: list[str] = []
    for port in svc.ports:
        if port.name is not None:
            if not PORT_NAME_RE.match(port.name):
                issues.error_at(port, "name", f"invalid port name {port.name!r}")
            elif port.name in names:
                issues.error_at(port, "name", f"duplicate port name {port.name!r}")
            names.append(port.name)
        if not 0 <= port.number < 65536:
            issues.error_at(port, "number", f"must be 0 (dynamic) or 1..65535, got {port.number}")
        if port.protocol not in ("tcp", "udp", "udp,tcp", "tcp,udp"):
            issues.error_at(
                port, "protocol", f"expected tcp, udp or udp,tcp, got {port.protocol!r}"
            )
    return names


def check_volumes(svc: ServiceSpec, issues: Issues) -> None:
    """Marathon's rules for resident (stateful) apps."""
    for vol in svc.volumes:
        path = vol.container_path
        if not path or "/" in path or path in (".", ".."):
            issues.error_at(
                vol,
                "container_path",
                f"must be one relative path component without '/', like 'data'; got {path!r}",
            )
        if not vol.size > 0:
            issues.error_at(vol, "size", f"must be greater than 0 (MiB), got {vol.size:g}")
        if vol.max_size is not None and vol.max_size < vol.size:
            issues.error_at(vol, "max_size", "must not be smaller than size")
        if vol.type not in ("root", "path", "mount"):
            issues.error_at(vol, "type", f"expected root, path or mount, got {vol.type!r}")
        if vol.mode != "RW":
            issues.error_at(
                vol, "mode", f"persistent volumes are read-write: expected 'RW', got {vol.mode!r}"
            )
    if svc.volumes:
        up = svc.upgrade_strategy
        if up.maximum_over_capacity != 0:
            issues.error_at(
                up,
                "maximum_over_capacity",
                "must be 0 for a service with"
                " persistent volumes (old tasks must free their volumes first)",
            )
        if up.minimum_health_capacity > 0.5:
            issues.error_at(
                up,
                "minimum_health_capacity",
                "must be at most 0.5 for a service with persistent volumes",
            )


def check_processes(
    owner: object, processes: list[ProcessSpec], order: list[list[str]], issues: Issues
) -> None:
    names: list[str] = []
    for proc in processes:
        if not proc.name or "/" in proc.name or proc.name.startswith("."):
            issues.error_at(proc, "name", f"invalid process name {proc.name!r}")
        elif proc.name in names:
            issues.error_at(proc, "name", f"duplicate process name {proc.name!r}")
        names.append(proc.name)
        if proc.max_failures < 0:
            issues.error_at(proc, "max_failures", "must be 0 (retry forever) or more")
    edges: dict[str, set[str]] = {n: set() for n in names}
    for i, chain in enumerate(order):
        for name in chain:
            if name not in edges:
                issues.error(
                    (*issues.path_of(owner, "process_order"), i),
                    f"order names unknown process {name!r}",
                )
        for a, b in itertools.pairwise(chain):
            edges.setdefault(a, set()).add(b)
    cycle = find_cycle(edges)
    if cycle:
        issues.error_at(
            owner, "process_order", "the order constraints form a cycle: " + " -> ".join(cycle)
        )


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path ``[a, b, a]``, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(edges):
        if state.get(root):
            continue
        path = [root]
        state[root] = 1
        stack = [iter(sorted(edges.get(root, ())))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges.get(nxt, ()))))
    return None


def validate_service(svc: ServiceSpec, issues: Issues, *, allow_gpus: bool = False) -> None:
    """Every single-service rule (dependencies are checked with the whole file)."""
    check_name(svc, svc.name, issues, "service")
    if not svc.command and not svc.processes:
        issues.error_at(svc, "command", "a service needs a command (or processes)")
    check_resources(svc, svc.resources, issues, allow_gpus=allow_gpus)
    if not 0 <= svc.instances <= MAX_INSTANCES:
        issues.error_at(
            svc, "instances", f"must be 0 to {MAX_INSTANCES:,}, got {_count(svc.instances)}"
        )
    names = check_ports(svc, issues)
    for hc in svc.health_checks:
        check_health(svc, hc, names, issues)
    for rc in svc.readiness_checks:
        if rc.port_name not in names:
            issues.error_at(
                rc,
                "port_name",
                f"unknown port {rc.port_name!r}; expected one of: "
                + (", ".join(names) or "(no named ports)"),
            )
        if rc.protocol not in ("HTTP", "HTTPS"):
            issues.error_at(rc, "protocol", f"expected HTTP or HTTPS, got {rc.protocol!r}")
        if not rc.timeout < rc.interval:
            issues.error_at(rc, "timeout", "must be smaller than interval")
    _check_policies(svc, issues)
    for c in svc.constraints:
        check_constraint(c, issues)
    check_volumes(svc, issues)
    check_processes(svc, svc.processes, svc.process_order, issues)
    _check_refs(svc, names, issues)


def _check_policies(svc: ServiceSpec, issues: Issues) -> None:
    up = svc.upgrade_strategy
    for field in ("minimum_health_capacity", "maximum_over_capacity"):
        if not 0 <= getattr(up, field) <= 1:
            issues.error_at(up, field, f"must be between 0 and 1, got {getattr(up, field)}")
    back = svc.backoff
    if back.seconds < 0 or back.max_launch_delay < 0:
        issues.error_at(back, "seconds", "backoff times must be 0 or more")
    if back.factor < 1:
        issues.error_at(back, "factor", f"must be 1 or more, got {back.factor}")
    if svc.kill_selection not in ("YOUNGEST_FIRST", "OLDEST_FIRST"):
        issues.error_at(
            svc,
            "kill_selection",
            f"expected YOUNGEST_FIRST or OLDEST_FIRST, got {svc.kill_selection!r}",
        )
    if svc.kill_grace_period is not None and svc.kill_grace_period < 0:
        issues.error_at(svc, "kill_grace_period", "must be 0 or more")
    un = svc.unreachable_strategy
    if not un.disabled and not 1 <= un.inactive_after < un.expunge_after:
        issues.error_at(un, "inactive_after", "must be at least 1 and less than expunge_after")


def _check_refs(svc: ServiceSpec, names: list[str], issues: Issues) -> None:
    if svc.lifecycle and svc.lifecycle.http_port_name not in names:
        issues.error_at(
            svc.lifecycle,
            "http_port_name",
            f"unknown port "
            f"{svc.lifecycle.http_port_name!r}; expected one of: "
            + (", ".join(names) or "(no named ports)"),
        )
    if svc.announce and svc.announce.primary_port not in names + list(svc.announce.portmap):
        issues.error_at(
            svc.announce,
            "primary_port",
            f"unknown port "
            f"{svc.announce.primary_port!r}; expected one of: "
            + (", ".join(names) or "(no named ports)"),
        )


def validate_job(job: BatchJobSpec, issues: Issues, *, allow_gpus: bool = False) -> None:
    """Every single-job rule (parents are checked with the whole file)."""
    check_name(job, job.name, issues, "job")
    if not job.command and not job.processes:
        issues.error_at(job, "command", "a job needs a command (or processes)")
    check_resources(job, job.resources, issues, allow_gpus=allow_gpus)
    if not 0 <= job.instances <= MAX_INSTANCES:
        issues.error_at(
            job, "instances", f"must be 0 to {MAX_INSTANCES:,}, got {_count(job.instances)}"
        )
    if job.retries < -1:
        issues.error_at(job, "retries", "must be -1 (until success), 0 or more")
    for field in ("timeout", "retry_deadline", "kill_grace_period"):
        value = getattr(job, field)
        if value is not None and value < 0:
            issues.error_at(job, field, "must be 0 or more")
    for sched in job.schedules:
        schedule.check_schedule(sched, issues)
    for c in job.constraints:
        check_constraint(c, issues)
    check_processes(job, job.processes, job.process_order, issues)
