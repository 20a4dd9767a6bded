"""The ``/v1`` request handlers for engine status, tasks, agents and roles.

Streaming endpoints (files, attach, events, stats, exec) are in :mod:`dshell_local.streams`
and :mod:`dshell_local.execsession`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web
from dshell.errors import NotFoundError, UsageError
from dshell.model import Framework, RunSpec, Task

from . import api, volapi
from .engine import Engine
from .server import decode_body, json_response, query_flag, query_float, raw_json_response
from .services import ServiceController
from .stats import StatsSampler, used_by_agent
from .svcapi import DeployRequest, ServiceCall

if TYPE_CHECKING:
    from .batch import JobController
    from .maintenance import MaintenanceController


@dataclass
class Context:
    """What the handlers share: the engine and the daemon's hooks."""

    engine: Engine
    sampler: StatsSampler
    status: Callable[[], api.EngineStatus]
    shutdown: Callable[[bool], None]
    services: ServiceController | None = None
    jobs: JobController | None = None
    maintenance: MaintenanceController | None = None

    def controller(self) -> ServiceController:
        if self.services is None:
            raise UsageError("this engine runs no services controller")
        return self.services

    def maint(self) -> MaintenanceController:
        if self.maintenance is None:
            raise UsageError("this engine runs no maintenance controller")
        return self.maintenance

    def job_controller(self) -> JobController:
        if self.jobs is None:
            raise UsageError("this engine runs no batch jobs controller")
        return self.jobs


CONTEXT = web.AppKey("context", Context)


def ctx_of(request: web.Request) -> Context:
    return request.app[CONTEXT]


def task_id_of(request: web.Request) -> str:
    return request.match_info["id"]


async def ping(request: web.Request) -> web.Response:
    return raw_json_response(b'{"ok":true,"api":"v1"}')


async def status(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).status())


async def shutdown(request: web.Request) -> web.Response:
    req = await decode_body(request, api.ShutdownRequest)
    ctx_of(request).shutdown(req.kill_tasks)
    return raw_json_response(b'{"ok":true}', status=202)


def _filters(request: web.Request) -> tuple[set[str], dict[str, str], str | None, str | None]:
    states = {s.upper() for s in request.query.get("state", "").split(",") if s}
    labels: dict[str, str] = {}
    for item in request.query.getall("label", []):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"label filter {item!r} must be key=value")
        labels[key] = value
    return states, labels, request.query.get("name"), request.query.get("prefix")


def _matches(
    task: Task, states: set[str], labels: dict[str, str], name: str | None, prefix: str | None
) -> bool:
    return (
        (not states or task.state.value in states)
        and all(task.labels.get(k) == v for k, v in labels.items())
        and (name is None or task.name == name)
        and (prefix is None or task.id.startswith(prefix))
    )


async def list_tasks(request: web.Request) -> web.Response:
    """Active tasks (``all=1``: every task the engine remembers), oldest first; summaries
    (no history, no env) unless ``view=full``."""
    engine = ctx_of(request).engine
    everything = query_flag(request, "all")
    full = request.query.get("view") == "full"
    limit_f = query_float(request, "limit", None)
    limit = int(limit_f) if limit_f is not None else None
    states, labels, name, prefix = _filters(request)
    if not (states or labels or name or prefix):
        if everything:
            rows = engine.store.all_tasks_json(limit, full)
        elif full:
            rows = [msgspec.json.encode(t) for t in engine.active()]
        else:
            rows = engine.active_summaries()
        if limit and not everything:
            rows = rows[-limit:]
        return raw_json_response(b"[" + b",".join(rows) + b"]")
    decoder = msgspec.json.Decoder(Task)
    if everything:
        pool = [decoder.decode(row) for row in engine.store.all_tasks_json(None, full)]
    else:
        pool = engine.active() if full else [decoder.decode(r) for r in engine.active_summaries()]
    found = [t for t in pool if _matches(t, states, labels, name, prefix)]
    return raw_json_response(msgspec.json.encode(found[-limit:] if limit else found))


async def submit(request: web.Request) -> web.Response:
    spec = await decode_body(request, RunSpec)
    tasks, created = await ctx_of(request).engine.submit(spec, templates=spec.templates)
    return json_response(tasks, status=201 if created else 200)


async def get_task(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).engine.get(task_id_of(request)))


async def kill(request: web.Request) -> web.Response:
    req = await decode_body(request, api.KillRequest)
    return json_response(await ctx_of(request).engine.kill(task_id_of(request), req.grace))


async def signal(request: web.Request) -> web.Response:
    req = await decode_body(request, api.SignalRequest)
    if not 0 < req.signal < 65:
        raise UsageError(f"bad signal number {req.signal}")
    return json_response(await ctx_of(request).engine.signal(task_id_of(request), req.signal))


async def wait(request: web.Request) -> web.Response:
    timeout = query_float(request, "timeout", None)
    return json_response(await ctx_of(request).engine.wait(task_id_of(request), timeout))


async def list_files(request: web.Request) -> web.Response:
    engine = ctx_of(request).engine
    task_id = task_id_of(request)
    engine.get(task_id)
    return json_response(engine.sandboxes.list_dir(task_id, request.query.get("path", "")))


async def agents(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    used = used_by_agent(ctx.engine, ctx.sampler.latest())
    views = ctx.engine.allocator.agent_views(used)
    if ctx.maintenance is not None:
        views = ctx.maintenance.decorate(views)
    return json_response(views)


async def agent_verb(request: web.Request) -> web.Response:
    """``POST /v1/agents/{drain|up|attributes}``."""
    from .maintapi import AgentRequest, AttributesRequest, DrainRequest

    maint = ctx_of(request).maint()
    verb = request.match_info["verb"]
    if verb == "drain":
        result = maint.drain(await decode_body(request, DrainRequest))
    elif verb == "up":
        result = maint.up((await decode_body(request, AgentRequest)).agent)
    elif verb == "attributes":
        result = maint.set_attributes(await decode_body(request, AttributesRequest))
    else:
        raise NotFoundError(f"no such verb {verb!r}")
    await ctx_of(request).engine.store.commit()
    return json_response(result)


async def list_windows(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).maint().windows())


async def maintenance_verb(request: web.Request) -> web.Response:
    """``POST /v1/maintenance/{schedule|cancel}``."""
    from .maintapi import CancelRequest, ScheduleRequest

    ctx = ctx_of(request)
    verb = request.match_info["verb"]
    if verb == "schedule":
        result: object = ctx.maint().schedule(await decode_body(request, ScheduleRequest))
    elif verb == "cancel":
        result = ctx.maint().cancel(await decode_body(request, CancelRequest))
    else:
        raise NotFoundError(f"no such verb {verb!r}")
    await ctx.engine.store.commit()
    return json_response(result)


async def roles(request: web.Request) -> web.Response:
    engine = ctx_of(request).engine
    demand = engine.framework.demand()
    names = sorted(set(engine.allocator.roles) | set(demand))
    out = []
    for name in names:
        role = engine.allocator.role(name)
        out.append(
            api.RoleShare(
                name=name,
                weight=role.weight,
                allocated={
                    "cpus": role.allocated.cpus,
                    "mem": role.allocated.mem,
                    "disk": role.allocated.disk,
                },
                share=engine.allocator.share(name),
                pending=demand.get(name, 0),
            )
        )
    return json_response(out)


async def list_quotas(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).engine.roles.list())


async def quota_verb(request: web.Request) -> web.Response:
    """``POST /v1/quota/{set|rm}``."""
    from .quotas import QuotaRequest, RoleRequest

    engine = ctx_of(request).engine
    verb = request.match_info["verb"]
    if verb == "set":
        result = engine.roles.set_quota(await decode_body(request, QuotaRequest))
    elif verb == "rm":
        result = engine.roles.remove_quota(await decode_body(request, RoleRequest))
    else:
        raise NotFoundError(f"no such verb {verb!r}")
    await engine.store.commit()
    return json_response(result)


async def reservation_verb(request: web.Request) -> web.Response:
    """``POST /v1/reservations/{reserve|unreserve}``."""
    from .quotas import ReserveRequest

    engine = ctx_of(request).engine
    verb = request.match_info["verb"]
    req = await decode_body(request, ReserveRequest)
    if verb == "reserve":
        result = engine.roles.reserve(req)
    elif verb == "unreserve":
        result = engine.roles.unreserve(req)
    else:
        raise NotFoundError(f"no such verb {verb!r}")
    await engine.store.commit()
    return json_response(result)


async def frameworks(request: web.Request) -> web.Response:
    fw = ctx_of(request).engine.framework
    return json_response([Framework(name=fw.name, kind="meta", state="RUNNING")])


async def list_services(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).controller().list())


async def deploy_services(request: web.Request) -> web.Response:
    req = await decode_body(request, DeployRequest)
    plan = await ctx_of(request).controller().deploy(req)
    return json_response(plan, status=200 if req.dry_run else 202)


async def service_verb(request: web.Request) -> web.Response:
    req = await decode_body(request, ServiceCall)
    result = await ctx_of(request).controller().call(request.match_info["verb"], req)
    return json_response(result)


async def list_jobs(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).job_controller().list_jobs())


async def create_jobs(request: web.Request) -> web.Response:
    from .jobapi import JobCreate

    req = await decode_body(request, JobCreate)
    return json_response(await ctx_of(request).job_controller().create(req), status=201)


async def job_verb(request: web.Request) -> web.Response:
    from .jobapi import JobCall

    req = await decode_body(request, JobCall)
    result = await ctx_of(request).job_controller().call(request.match_info["verb"], req)
    return json_response(result)


def add_routes(app: web.Application) -> None:
    """Register the non-streaming routes."""
    p = api.API_PREFIX
    app.router.add_get(f"{p}/ping", ping)
    app.router.add_get(f"{p}/status", status)
    app.router.add_post(f"{p}/shutdown", shutdown)
    app.router.add_get(f"{p}/tasks", list_tasks)
    app.router.add_post(f"{p}/tasks", submit)
    app.router.add_get(f"{p}/tasks/{{id}}", get_task)
    app.router.add_post(f"{p}/tasks/{{id}}/kill", kill)
    app.router.add_post(f"{p}/tasks/{{id}}/signal", signal)
    app.router.add_get(f"{p}/tasks/{{id}}/wait", wait)
    app.router.add_get(f"{p}/tasks/{{id}}/files", list_files)
    app.router.add_get(f"{p}/agents", agents)
    app.router.add_post(f"{p}/agents/{{verb}}", agent_verb)
    app.router.add_get(f"{p}/maintenance", list_windows)
    app.router.add_post(f"{p}/maintenance/{{verb}}", maintenance_verb)
    app.router.add_get(f"{p}/roles", roles)
    app.router.add_get(f"{p}/quota", list_quotas)
    app.router.add_post(f"{p}/quota/{{verb}}", quota_verb)
    app.router.add_post(f"{p}/reservations/{{verb}}", reservation_verb)
    app.router.add_get(f"{p}/frameworks", frameworks)
    app.router.add_get(f"{p}/services", list_services)
    app.router.add_post(f"{p}/services/deploy", deploy_services)
    app.router.add_post(f"{p}/services/{{verb}}", service_verb)
    app.router.add_get(f"{p}/jobs", list_jobs)
    app.router.add_post(f"{p}/jobs/create", create_jobs)
    app.router.add_post(f"{p}/jobs/{{verb}}", job_verb)
    volapi.add_routes(app, p)
