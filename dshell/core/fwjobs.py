"""Frameworks hosted by plain tasks, on a host without services (Slurm).

``fw launch KIND --on /hpc`` where the host has RUN but no SERVICES: the kind's
:class:`~dshell.frameworks.JobHosted` gives the tasks to submit, stage by stage. Every task is
labelled like a framework's services (``dshell.fw=NAME``, ``dshell.fw.kind``,
``dshell.fw.request``; Slurm keeps labels in the job's comment), so ``fw ls``, ``fw rm`` and
the mount's resolution find the framework from the host's task list alone.

The host allocates no ports: each task picks free ports on its node's address when it
starts and announces them on its stdout (``DSHELL_ENDPOINT NAME HOST:PORT``,
:func:`dshell.frameworks.parse_announcements`), which the core reads with
``Backend.read_output``. A stage is ready when each of its tasks is running, has announced
the endpoint its ``dshell.fw.ready`` label names, and answers an HTTP GET of the label's path
there (probed from where the shell runs, each probe bounded). The announced endpoints feed the
next stage and the mount. A launch that fails or times out cancels every task it submitted.

What the host cannot do, the framework cannot either: a task that ends is not replaced
(Slurm restarts a job only when it requeues it, e.g. after a node failure); the kind's tasks
restart their own processes within the job (see docs/frameworks.md, "On hosts without
services").
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from ..backend import Capability, Mount, TaskQuery, require
from ..errors import (
    ConflictError,
    DeploymentFailed,
    DshellError,
    NotFoundError,
    TimeoutExpired,
    UsageError,
)
from ..frameworks import (
    LABEL,
    MAX_BATCHES,
    READY_LABEL,
    LaunchRequest,
    load_kind,
    parse_announcements,
    request_labels,
    request_of,
    service_name,
)
from ..model import Endpoint, Framework, Resources, TaskState

if TYPE_CHECKING:
    from ..backend import Backend
    from ..frameworks import FrameworkKind, JobHosted
    from ..model import RunSpec, Task
    from ..session import Session

POLL = 1.0  # seconds between looks at a stage's tasks
PROBE_TIMEOUT = 3.0  # seconds one readiness probe may take
CANCEL_TIMEOUT = 60.0  # seconds a failed launch waits for its tasks to end
ERROR_LINES = 5  # lines of a failed task's stderr quoted in the error


# ---- the framework's tasks ---------------------------------------------------------------


def framework_tasks(host: Backend, name: str, *, finished: bool = False) -> list[Task]:
    """The tasks of framework ``name`` on ``host`` (active ones unless ``finished``), the
    main one (``fw-NAME``) first."""
    query = TaskQuery(all=finished, selector={LABEL: name})
    found = [t for t in host.list_tasks(query) if t.labels.get(LABEL) == name]
    if not finished:
        found = [t for t in found if t.state.active]
    main = service_name(name)
    return sorted(found, key=lambda t: (t.name != main, t.name, t.instance or 0, t.id))


def output_text(host: Backend, task_id: str, stream: str = "stdout") -> str:
    """What the task has written to ``stream`` so far (not following)."""
    data = b"".join(c.data for c in host.read_output(task_id, stream=stream))
    return data.decode("utf-8", "replace")


def endpoints_of(host: Backend, task: Task) -> list[Endpoint]:
    """The endpoints ``task`` announced (none before it runs)."""
    if task.state != TaskState.RUNNING:
        return []
    found = parse_announcements(output_text(host, task.id))
    return [
        Endpoint(
            service=task.name,
            task_id=task.id,
            instance=task.instance or 0,
            port_name=port_name,
            host=addr,
            port=port,
            ready=True,
        )
        for port_name, (addr, port) in sorted(found.items())
    ]


def announced(host: Backend, tasks: list[Task]) -> dict[str, list[Endpoint]]:
    """Task name -> the endpoints its running tasks announce now."""
    result: dict[str, list[Endpoint]] = {}
    for task in tasks:
        result.setdefault(task.name, []).extend(endpoints_of(host, task))
    return result


# ---- launching ---------------------------------------------------------------------------


def launch(
    session: Session,
    kind: FrameworkKind,
    host: Backend,
    host_mount: Mount,
    req: LaunchRequest,
    timeout: float | None,
) -> Framework:
    """Submit the framework's tasks stage by stage, each ready before the next, then mount
    it at ``HOST/fw/NAME``; anything submitted is cancelled if that fails."""
    for cap in (Capability.TASKS, Capability.RUN, Capability.KILL, Capability.FILES):
        require(host, cap, "fw launch")
    hosted = kind.job_hosted(host)
    if framework_tasks(host, req.name):
        raise ConflictError(
            f"framework {req.name!r} already runs on {req.host} "
            f"(tasks labelled {LABEL}={req.name}; `fw rm {req.host}/fw/{req.name}` first)"
        )
    hosted.check(host, req)
    deadline = None if timeout is None else time.monotonic() + timeout
    submitted: list[str] = []
    try:
        _submit_all(host, hosted, req, submitted, deadline, timeout)
        session.table.add(
            Mount(
                target=f"{req.host}/fw/{req.name}",
                type=kind.mount_type,
                options={"fw": req.name, "host": req.host, "kind": req.kind},
            )
        )
    except BaseException:
        cancel(host, submitted, CANCEL_TIMEOUT, strict=False)
        with contextlib.suppress(DshellError, OSError):
            hosted.remove(host, req)
        raise
    session.invalidate_mounts()
    return Framework(
        name=req.name,
        kind=req.kind,
        mount=f"{req.host}/fw/{req.name}",
        host=req.host,
        state="RUNNING",
        service=" ".join(submitted),
        resources=req.resources,
    )


def _submit_all(
    host: Backend,
    hosted: JobHosted,
    req: LaunchRequest,
    submitted: list[str],
    deadline: float | None,
    timeout: float | None,
) -> None:
    endpoints: dict[str, list[Endpoint]] = {}
    for _ in range(MAX_BATCHES):
        batch = hosted.jobs(host, req, endpoints)
        if not batch:
            return
        stage: list[tuple[RunSpec, list[Task]]] = []
        for spec in batch:
            if not spec.name or spec.name in endpoints:
                raise UsageError(f"framework kind {req.kind!r}: a task without a unique name")
            spec.labels = {**spec.labels, **request_labels(req)}
            tasks = host.submit(spec)
            submitted.extend(t.id for t in tasks)
            stage.append((spec, tasks))
        for spec, tasks in stage:
            endpoints[spec.name or ""] = wait_ready(host, req, spec, tasks, deadline, timeout)
    raise UsageError(f"framework kind {req.kind!r} never finished (over {MAX_BATCHES} stages)")


def ready_probe(spec: RunSpec) -> tuple[str, str] | None:
    """(endpoint name, path) of the task's readiness probe, from its READY_LABEL."""
    text = spec.labels.get(READY_LABEL, "").strip()
    if not text:
        return None
    name, _, path = text.partition(" ")
    return name, path.strip() or "/"


def http_ok(endpoint: Endpoint, path: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``GET http://HOST:PORT/path`` answers 2xx within ``timeout``."""
    where = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    url = f"http://{where}:{endpoint.port}{path if path.startswith('/') else '/' + path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(
    host: Backend,
    req: LaunchRequest,
    spec: RunSpec,
    tasks: list[Task],
    deadline: float | None,
    timeout: float | None,
) -> list[Endpoint]:
    """Wait until every task of ``spec`` is ready; their announced endpoints. A task that
    ends fails the launch (with the end of its stderr), the deadline times it out."""
    probe = ready_probe(spec)
    pending = {t.id for t in tasks}
    ready: dict[str, list[Endpoint]] = {}
    while True:
        for task_id in sorted(pending):
            task = host.get_task(task_id)
            if task.state.terminal:
                raise DeploymentFailed(_ended(host, req, task))
            found = endpoints_of(host, task)
            if not found:
                continue
            if probe is not None:
                hits = [e for e in found if e.port_name == probe[0]]
                if not hits or not http_ok(hits[0], probe[1]):
                    continue
            ready[task_id] = found
            pending.discard(task_id)
        if not pending:
            return [e for t in tasks for e in ready[t.id]]
        if deadline is not None and time.monotonic() >= deadline:
            late = host.get_task(sorted(pending)[0])
            why = f" ({late.message})" if late.message else ""
            raise TimeoutExpired(
                f"framework {req.name!r}: task {late.id} ({spec.name}) not ready within "
                f"{timeout:g}s: it is {late.state}{why}"
            )
        time.sleep(POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic())))


def _ended(host: Backend, req: LaunchRequest, task: Task) -> str:
    status = f"exit {task.exit_code}" if task.exit_code is not None else task.state.value
    text = f"framework {req.name!r}: task {task.id} ({task.name}) ended during launch ({status})"
    if task.message:
        text += f": {task.message}"
    with contextlib.suppress(DshellError, OSError):
        tail = [ln for ln in output_text(host, task.id, "stderr").splitlines() if ln.strip()]
        if tail:
            text += "\n  " + "\n  ".join(tail[-ERROR_LINES:])
    return text


def cancel(host: Backend, task_ids: list[str], timeout: float | None, *, strict: bool) -> None:
    """Kill the tasks and wait until each has ended (``strict``: a timeout is an error)."""
    for task_id in task_ids:
        with contextlib.suppress(NotFoundError):
            host.kill(task_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    for task_id in task_ids:
        left = None if deadline is None else max(1.0, deadline - time.monotonic())
        try:
            host.wait_task(task_id, timeout=left)
        except NotFoundError:
            continue
        except TimeoutExpired:
            if strict:
                raise


# ---- listing, resolving, removing -------------------------------------------------------


def _state(tasks: list[Task]) -> str:
    """RUNNING when every task runs; DEPLOYING when none does yet; else RECOVERING."""
    running = sum(t.state == TaskState.RUNNING for t in tasks)
    if running == len(tasks):
        return "RUNNING"
    return "DEPLOYING" if running == 0 else "RECOVERING"


def frameworks_on(host: Backend, host_target: str) -> list[Framework]:
    """The job-hosted frameworks on ``host``: one row each, its active tasks summed."""
    groups: dict[str, list[Task]] = {}
    for task in host.list_tasks(TaskQuery()):
        name = task.labels.get(LABEL)
        if name and task.state.active:
            groups.setdefault(name, []).append(task)
    rows = []
    for name, tasks in sorted(groups.items()):
        req = next((r for r in map(lambda t: request_of(t.labels), tasks) if r), None)
        total = Resources()
        for t in tasks:
            total = total + t.resources
        rows.append(
            Framework(
                name=name,
                kind=req.kind if req else tasks[0].labels.get("dshell.fw.kind", "?"),
                mount=f"{host_target}/fw/{name}",
                host=host_target,
                state=_state(tasks),
                service=" ".join(t.id for t in tasks),
                resources=total,
            )
        )
    return rows


def mount_source(
    session: Session, host: Backend, name: str, target: str
) -> tuple[str, str, dict[str, str]]:
    """(backend type, source, options) of a job-hosted framework's mount, from the
    endpoints its tasks announce now."""
    tasks = framework_tasks(host, name)
    req = next((r for r in (request_of(t.labels) for t in tasks) if r), None)
    if req is None:
        raise NotFoundError(
            f"{target}: framework {name!r} has no running task on {host.mount.target or 'its host'}"
            f" (`fw rm {target}` forgets it)"
        )
    kind = load_kind(req.kind, session.env.environ)
    source, options = kind.job_hosted(host).mount_source(host, req, announced(host, tasks), tasks)
    return kind.mount_type, source, options


def rm(
    session: Session,
    host: Backend,
    target: str,
    name: str,
    host_path: str,
    below: list[str],
    timeout: float | None,
) -> Framework:
    """Cancel the framework's tasks (the host stops their process trees), wait until they
    ended, and let the kind free what it kept on the host."""
    from .fw import umount_all

    require(host, Capability.KILL, "fw rm")
    tasks = framework_tasks(host, name)
    known = tasks or framework_tasks(host, name, finished=True)
    req = next((r for r in (request_of(t.labels) for t in known) if r), None)
    if not tasks and not below:
        raise NotFoundError(f"no framework {name!r} on {host_path}")
    umount_all(session, below)
    cancel(host, [t.id for t in tasks], timeout, strict=True)
    if req is not None:
        load_kind(req.kind, session.env.environ).job_hosted(host).remove(host, req)
    return Framework(
        name=name,
        kind=req.kind if req else "?",
        mount=target,
        host=host_path,
        state="REMOVED",
        service=" ".join(t.id for t in tasks) or None,
        resources=req.resources if req else Resources(),
    )
