"""``/local``: the embedded engine as a dshell backend (over the engine's Unix socket).

The engine is started on first use unless the mount says ``autostart=no``. Every method is a
synchronous call through :class:`dshell_local.client.EngineClient`; the answers are already
:mod:`dshell.model` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec
from dshell.backend import Backend, Capability, ExecHandle, Mount, TaskQuery
from dshell.errors import (
    BackendError,
    UnreachableError,
    UnsupportedError,
    UsageError,
    status_from_wait,
)
from dshell.model import (
    Agent,
    Deployment,
    Endpoint,
    Event,
    FileEntry,
    Job,
    JobRun,
    MaintenanceWindow,
    OutputChunk,
    RoleQuota,
    RunSpec,
    Service,
    ServiceVersion,
    Task,
    TaskStats,
    Volume,
)

from . import api
from .client import EngineClient

_STREAMS = {api.FRAME_STDOUT: "stdout", api.FRAME_STDERR: "stderr"}


class LocalExecHandle(ExecHandle):
    """An exec (or an interactive attach) over the engine's WebSocket; ``write_stdin(b"")``
    closes the command's stdin (sends ^D to a terminal)."""

    def __init__(
        self, socket_path: str, path: str, first: bytes | None = None, what: str = "exec"
    ) -> None:
        from .wsclient import WebSocket

        self._ws = WebSocket.connect(socket_path, path)
        if first is not None:
            self._ws.send_text(first.decode())
        self._what = what
        self._status: int | None = None

    def chunks(self) -> Iterator[OutputChunk]:
        while (message := self._ws.recv()) is not None:
            if not message:
                continue
            kind, payload = message[0], message[1:]
            if kind in _STREAMS:
                yield OutputChunk(_STREAMS[kind], payload)
            elif kind == api.FRAME_EXIT:
                self._status = msgspec.json.decode(payload, type=api.ExitStatus).status
            elif kind == api.FRAME_ERROR:
                detail = msgspec.json.decode(payload, type=api.ErrorDetail)
                raise BackendError(f"{self._what} failed: {detail.message}")
        self._ws.close()

    def status(self) -> int:
        if self._status is None:
            raise BackendError(f"{self._what} ended without an exit status")
        return self._status

    def write_stdin(self, data: bytes) -> None:
        if data:
            self._ws.send_binary(bytes([api.FRAME_STDIN]) + data)
        else:
            self._ws.send_binary(bytes([api.FRAME_STDIN_EOF]))

    def resize(self, rows: int, cols: int) -> None:
        self._ws.send_binary(bytes([api.FRAME_RESIZE]) + api.pack_resize(rows, cols))

    def close(self) -> None:
        self._ws.close()


class LocalBackend(Backend):
    """The embedded engine on this machine."""

    name = "local"
    capabilities = frozenset(
        {
            Capability.TASKS,
            Capability.RUN,
            Capability.KILL,
            Capability.SIGNAL,
            Capability.ATTACH,
            Capability.EXEC,
            Capability.TTY,
            Capability.FILES,
            Capability.FOLLOW,
            Capability.STATS,
            Capability.AGENTS,
            Capability.EVENTS,
            Capability.IDEMPOTENCY,
            Capability.SERVICES,
            Capability.DEPLOYMENTS,
            Capability.JOBS,
            Capability.DRAIN,
            Capability.MAINTENANCE,
            Capability.ATTRIBUTES,
            Capability.QUOTA,
            Capability.RESERVATIONS,
            Capability.VOLUMES,
            Capability.PREEMPTION,
        }
    )
    options: ClassVar[dict[str, str]] = {
        "socket": "the engine's Unix socket (default: engine.sock in the runtime dir)",
        "autostart": "start the engine on first use: yes (default) or no",
    }

    def __init__(self, mount: Mount) -> None:
        super().__init__(mount)
        self._client: EngineClient | None = None
        self.last_exit: api.ExitStatus | None = None

    @property
    def client(self) -> EngineClient:
        """The engine client, starting the engine on first use (unless autostart=no)."""
        if self._client is None:
            from . import control

            path = self.mount.options.get("socket") or str(control.socket_path())
            c = EngineClient(path)
            if not c.ping():
                if self.mount.options.get("autostart", "yes").lower() in ("no", "false", "0"):
                    raise UnreachableError(
                        f"the engine at {path} is not running", hint="dshell engine start"
                    )
                control.start()
            self._client = c
        return self._client

    def _engine_up(self) -> bool:
        """Whether the engine answers (without starting it)."""
        if self._client is not None:
            return True
        from . import control

        path = self.mount.options.get("socket") or str(control.socket_path())
        probe = EngineClient(path)
        try:
            return probe.ping()
        finally:
            probe.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def list_tasks(self, query: TaskQuery) -> list[Task]:
        return self.client.list_tasks(
            all=query.all,
            states=query.states or None,
            labels=query.selector or None,
            limit=query.limit,
        )

    def get_task(self, task_id: str) -> Task:
        return self.client.get_task(task_id)

    def list_agents(self) -> list[Agent]:
        return self.client.agents()

    def submit(self, spec: RunSpec) -> list[Task]:
        return self.client.submit(spec)

    def kill(self, task_id: str, *, signal: int | None = None, grace: float | None = None) -> Task:
        if signal is not None:
            return self.client.signal(task_id, signal)
        return self.client.kill(task_id, grace)

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        return self.client.wait(task_id, timeout)

    def read_output(
        self, task_id: str, *, stream: str = "stdout", offset: int = 0, follow: bool = False
    ) -> Iterator[OutputChunk]:
        for data in self.client.read_file(task_id, stream, offset=offset, follow=follow):
            yield OutputChunk(stream, data, offset)
            offset += len(data)

    def attach(self, task_id: str) -> Iterator[OutputChunk]:
        offsets = {"stdout": 0, "stderr": 0}
        for kind, payload in self.client.attach(task_id):
            if kind in _STREAMS:
                stream = _STREAMS[kind]
                yield OutputChunk(stream, payload, offsets[stream])
                offsets[stream] += len(payload)
            elif kind == api.FRAME_EXIT:
                self.last_exit = msgspec.json.decode(payload, type=api.ExitStatus)

    def list_files(self, task_id: str, path: str) -> list[FileEntry]:
        return self.client.list_files(task_id, path)

    def read_file(
        self, task_id: str, path: str, *, offset: int = 0, follow: bool = False
    ) -> Iterator[bytes]:
        return self.client.read_file(task_id, path, offset=offset, follow=follow)

    def exec(
        self,
        task_id: str,
        command: list[str],
        *,
        tty: bool = False,
        env: dict[str, str] | None = None,
    ) -> ExecHandle:
        request = api.ExecRequest(command=command, tty=tty, env=env or {})
        path = f"{api.API_PREFIX}/tasks/{quote(task_id, safe='')}/exec"
        return LocalExecHandle(self.client.socket_path, path, api.encode(request))

    def run_interactive(self, spec: RunSpec) -> ExecHandle:
        """Launch one task with a terminal and attach to it (``run -it``)."""
        if spec.instances != 1:
            raise UsageError("run -it launches one task (not --instances)")
        task = self.submit(msgspec.structs.replace(spec, tty=True))[0]
        path = f"{api.API_PREFIX}/tasks/{quote(task.id, safe='')}/attach?interactive=1"
        return LocalExecHandle(self.client.socket_path, path, what=f"run -it ({task.id})")

    def list_services(self) -> list[Service]:
        return self.client.call("GET", "/services", list[Service])

    def get_service(self, name: str) -> Service:
        return self.client.call("POST", "/services/status", Service, {"name": name})

    def service_call(self, verb: str, name: str, **params: Any) -> Any:
        if verb == "deploy":
            from .svcapi import DeployRequest, PlanItem

            req = DeployRequest(
                services=params.get("services", []),
                groups=params.get("groups", []),
                force=params.get("force", False),
                dry_run=params.get("dry_run", False),
                rollback_on_failure=params.get("rollback_on_failure", False),
            )
            return self.client.call("POST", "/services/deploy", list[PlanItem], req)
        if verb == "spec":
            from dshell.specs.model import ServiceSpec

            body = {"name": name, "to_version": params.get("version")}
            return self.client.call("POST", "/services/spec", ServiceSpec, body)
        kind = _SVC_ANSWERS.get(verb)
        if kind is None:
            raise UnsupportedError(self.name, f"svc {verb}")
        body = {"name": name, **{k: v for k, v in params.items() if v is not None}}
        if verb != "wait":
            return self.client.call("POST", f"/services/{verb}", kind, body)
        timeout = params.get("timeout")
        patience = None if timeout is None else timeout + 10.0  # the engine answers by then
        return self.client.call("POST", "/services/wait", kind, body, timeout=patience)

    def list_jobs(self) -> list[Job]:
        return self.client.call("GET", "/jobs", list[Job])

    def job_call(self, verb: str, name: str, **params: Any) -> Any:
        if verb == "create":
            from .jobapi import JobCreate

            req = JobCreate(jobs=params.get("jobs", []), replace=params.get("replace", False))
            return self.client.call("POST", "/jobs/create", list[Job], req)
        kind = _JOB_ANSWERS.get(verb)
        if kind is None:
            raise UnsupportedError(self.name, f"job {verb}")
        body = {"name": name, **{k: v for k, v in params.items() if v is not None}}
        return self.client.call("POST", f"/jobs/{verb}", kind, body)

    def stats(self) -> list[TaskStats]:
        return self.client.stats()

    def admin_call(self, verb: str, **params: Any) -> Any:
        """drain (node, reason, grace), undrain (node), attributes (node, set, unset),
        maint_ls, maint_schedule (node, start | start_in, duration), maint_cancel (node, all),
        quota_ls, quota_set (role, cpus, mem, disk, weight), quota_rm (role),
        reserve / unreserve (node, role, cpus, mem, disk), vol_ls, vol_create (name, size,
        role, agent), vol_show / vol_umount / vol_rm (name)."""
        node = params.get("node")
        if verb == "drain":
            body: dict[str, Any] = {"agent": node, "reason": params.get("reason")}
            body["max_grace"] = params.get("grace")
            return self.client.call("POST", "/agents/drain", Agent, body)
        if verb == "undrain":
            return self.client.call("POST", "/agents/up", Agent, {"agent": node})
        if verb == "attributes":
            body = {"agent": node, "set": params.get("set", {}), "unset": params.get("unset", [])}
            return self.client.call("POST", "/agents/attributes", Agent, body)
        if verb == "maint_ls":
            return self.client.call("GET", "/maintenance", list[MaintenanceWindow])
        if verb == "maint_schedule":
            body = {
                "agent": node,
                "duration": params["duration"],
                "start": params.get("start"),
                "start_in": params.get("start_in"),
            }
            return self.client.call("POST", "/maintenance/schedule", MaintenanceWindow, body)
        if verb == "maint_cancel":
            body = {"agent": node, "all": bool(params.get("all"))}
            return self.client.call("POST", "/maintenance/cancel", list[MaintenanceWindow], body)
        if verb == "quota_ls":
            return self.client.call("GET", "/quota", list[RoleQuota])
        if verb in ("quota_set", "quota_rm"):
            body = {k: v for k, v in params.items() if v is not None}
            return self.client.call("POST", f"/quota/{verb[6:]}", RoleQuota, body)
        if verb in ("reserve", "unreserve"):
            body = {"agent": node, **{k: v for k, v in params.items() if k != "node"}}
            body = {k: v for k, v in body.items() if v is not None}
            return self.client.call("POST", f"/reservations/{verb}", RoleQuota, body)
        if verb == "vol_ls":
            if params.get("passive") and not self._engine_up():
                return []  # a listing (bare `mount`) does not start the engine
            return self.client.call("GET", "/volumes", list[Volume])
        if verb in ("vol_create", "vol_show", "vol_umount", "vol_rm"):
            body = {k: v for k, v in params.items() if v is not None}
            return self.client.call("POST", f"/volumes/{verb[4:]}", Volume, body)
        raise UnsupportedError(self.name, f"the {verb!r} operation")

    def events(self, *, since: int | None = None, follow: bool = True) -> Iterator[Event]:
        return self.client.events(since or 0, follow)


# what each service verb answers (the engine's JSON decoded into the neutral model)
_SVC_ANSWERS: dict[str, Any] = {
    "status": Service,
    "wait": Service,
    "scale": Service,
    "restart": Service,
    "rollback": Service,
    "pause": Service,
    "resume": Service,
    "abort": Service,
    "kill_scale": Service,
    "stop": list[Service],
    "start": list[Service],
    "rm": list[Service],
    "deployments": list[Deployment],
    "versions": list[ServiceVersion],
    "endpoints": list[Endpoint],
}


# what each job verb answers
_JOB_ANSWERS: dict[str, Any] = {
    "show": Job,
    "run": JobRun,
    "kill": list[JobRun],
    "rm": Job,
    "history": list[JobRun],
    "pause": Job,
    "resume": Job,
}


def exit_status(task: Task) -> int:
    """Shell-style status of a finished task."""
    return status_from_wait(task.exit_code, task.signal)
