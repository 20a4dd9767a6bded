"""Frameworks hosted by plain tasks on a host without services (:mod:`dshell.core.fwjobs`):
the endpoint announcements, the stages, readiness probes, failure and timeout cleanup,
listing, resolving and removal, on an in-memory host (no service needed). The real thing, a
Ray cluster on Slurm, is tests/ray/test_fw_slurm.py."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from dshell.backend import Backend, Capability, Mount, TaskQuery
from dshell.core import fwjobs
from dshell.errors import (
    DeploymentFailed,
    ExitCode,
    NotFoundError,
    PluginError,
    TimeoutExpired,
    UnsupportedError,
)
from dshell.frameworks import (
    LABEL,
    READY_LABEL,
    REQUEST_LABEL,
    FrameworkKind,
    JobHosted,
    LaunchRequest,
    announce_line,
    parse_announcements,
)
from dshell.model import Agent, Endpoint, OutputChunk, Resources, RunSpec, Task, TaskState
from dshell.testing.fixtures import Dirs

# ---- announcements --------------------------------------------------------------------------


def test_announcements_round_trip_and_last_wins() -> None:
    text = "\n".join(
        [
            "Ray says hello",
            announce_line("gcs", "10.0.0.5", 6379),
            announce_line("dashboard", "::1", 8265),
            "DSHELL_ENDPOINT broken 10.0.0.5",  # no port
            "DSHELL_ENDPOINT zero 10.0.0.5:0",
            "DSHELL_ENDPOINT big 10.0.0.5:70000",
            "DSHELL_ENDPOINT extra 1.2.3.4:5 trailing",
            "  DSHELL_ENDPOINT spaced 127.0.0.1:9  ",
            announce_line("gcs", "10.0.0.6", 6380),  # restarted on a new port
        ]
    )
    assert announce_line("dashboard", "::1", 8265) == "DSHELL_ENDPOINT dashboard [::1]:8265"
    assert parse_announcements(text) == {
        "gcs": ("10.0.0.6", 6380),
        "dashboard": ("::1", 8265),
        "spaced": ("127.0.0.1", 9),
    }
    assert parse_announcements("") == {}


# ---- the core, on an in-memory host without services -----------------------------------------


class JobsHost(Backend):
    """A host with RUN but no SERVICES whose tasks behave by their command's first word:
    ``serve`` announces ``http`` (the test's HTTP server), ``announce`` announces ``x`` on
    ::1, ``fail`` ends at once (exit 3, ``boom`` on stderr), ``silent`` runs and says nothing.
    """

    name = "jobs"
    capabilities = frozenset(
        {Capability.TASKS, Capability.RUN, Capability.KILL, Capability.FILES, Capability.ATTACH}
    )

    def __init__(self, http_port: int) -> None:
        super().__init__(Mount(target="/j", type="jobs", source="mem"))
        self.http_port = http_port
        self.tasks: dict[str, Task] = {}
        self.out: dict[str, str] = {}
        self.err: dict[str, str] = {}
        self.killed: list[str] = []
        self.submitted: list[RunSpec] = []

    def list_tasks(self, query: TaskQuery) -> list[Task]:
        return [t for t in self.tasks.values() if query.all or t.state.active]

    def get_task(self, task_id: str) -> Task:
        return self.tasks[task_id]

    def list_agents(self) -> list[Agent]:
        return []

    def submit(self, spec: RunSpec) -> list[Task]:
        self.submitted.append(spec)
        made = []
        for i in range(spec.instances):
            task_id = str(len(self.tasks) + 1)
            word = spec.command[0]
            task = Task(
                id=task_id,
                name=spec.name or "",
                state=TaskState.FAILED if word == "fail" else TaskState.RUNNING,
                labels=dict(spec.labels),
                resources=spec.resources,
                instance=i if spec.instances > 1 else None,
                exit_code=3 if word == "fail" else None,
            )
            if word == "serve":
                self.out[task_id] = announce_line("http", "127.0.0.1", self.http_port) + "\n"
            elif word == "announce":
                self.out[task_id] = "noise\n" + announce_line("x", "::1", 7000 + i) + "\n"
            elif word == "fail":
                self.err[task_id] = "starting\nboom\n"
            self.tasks[task_id] = task
            made.append(task)
        return made

    def kill(self, task_id: str, *, signal: int | None = None, grace: float | None = None) -> Task:
        self.killed.append(task_id)
        task = self.tasks[task_id]
        if task.state.active:
            task.state = TaskState.KILLED
        return task

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        return self.tasks[task_id]

    def read_output(
        self, task_id: str, *, stream: str = "stdout", offset: int = 0, follow: bool = False
    ) -> Iterator[OutputChunk]:
        data = (self.out if stream == "stdout" else self.err).get(task_id, "").encode()
        return iter([OutputChunk(stream, data[offset:], offset)] if data[offset:] else [])


class Stages(JobHosted):
    """Two stages: ``fw-t`` (ready on ``http PATH``), then two ``fw-t-aux`` tasks."""

    def __init__(self, first: str = "serve", second: str = "announce", path: str = "/ok"):
        self.first, self.second, self.path = first, second, path
        self.calls: list[dict[str, list[Endpoint]]] = []
        self.removed: list[str] = []

    def remove(self, host: Backend, req: LaunchRequest) -> None:
        self.removed.append(req.name)

    def jobs(
        self, host: Backend, req: LaunchRequest, announced: Mapping[str, list[Endpoint]]
    ) -> list[RunSpec]:
        self.calls.append(dict(announced))
        if "fw-t" not in announced:
            ready = {READY_LABEL: f"http {self.path}"}
            return [RunSpec(command=[self.first], name="fw-t", labels=ready)]
        if "fw-t-aux" not in announced:
            return [
                RunSpec(
                    command=[self.second],
                    name="fw-t-aux",
                    instances=2,
                    resources=Resources(cpus=0.5, mem=100),
                )
            ]
        return []

    def mount_source(
        self,
        host: Backend,
        req: LaunchRequest,
        announced: Mapping[str, list[Endpoint]],
        tasks: Sequence[Task],
    ) -> tuple[str, dict[str, str]]:
        return f"http://{announced['fw-t'][0].address}", {"tasks": str(len(tasks))}


class ServicesOnlyKind(FrameworkKind):
    """A kind without a job form (the default :meth:`FrameworkKind.job_hosted`)."""

    name = "stages"
    mount_type = "fake"

    def services(self, host: Any, req: Any, endpoints: Any) -> list[Any]:
        raise AssertionError("a host without services gets tasks")

    def mount_source(self, host: Any, req: Any, endpoints: Any) -> tuple[str, dict[str, str]]:
        raise AssertionError("a host without services gets tasks")


class StagesKind(ServicesOnlyKind):
    #: what load_kind() gets for "stages" (set by a test)
    shared: ClassVar[Stages | None] = None

    def __init__(self, hosted: Stages | None = None) -> None:
        self.hosted = hosted or StagesKind.shared or Stages()

    def job_hosted(self, host: Backend) -> JobHosted:
        return self.hosted


class _Health(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def health() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    handler = type("Health", (_Health,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def _session(dirs: Dirs) -> Any:
    from dshell.session import Env, Session

    kinds = f"stages={__name__}:StagesKind"  # this module, already imported
    return Session(env=Env(environ={**os.environ, "DSHELL_FRAMEWORKS": kinds}))


REQ = LaunchRequest(name="t", kind="stages", host="/j", resources=Resources(cpus=1, mem=200))


def test_jobs_launch_in_stages_labelled_then_mounted(
    dshell_dirs: Dirs, health: tuple[int, list[str]]
) -> None:
    port, hits = health
    host, hosted = JobsHost(port), Stages()
    session = _session(dshell_dirs)
    fw = fwjobs.launch(session, StagesKind(hosted), host, host.mount, REQ, timeout=30)
    assert (fw.name, fw.mount, fw.state, fw.service) == ("t", "/j/fw/t", "RUNNING", "1 2 3")
    assert "/ok" in hits  # the first stage was probed before the second was asked for
    assert [sorted(c) for c in hosted.calls] == [[], ["fw-t"], ["fw-t", "fw-t-aux"]]
    assert hosted.calls[1]["fw-t"][0].address == f"127.0.0.1:{port}"
    assert [(e.host, e.port) for e in hosted.calls[2]["fw-t-aux"]] == [("::1", 7000), ("::1", 7001)]
    for task in host.tasks.values():
        assert task.labels[LABEL] == "t" and task.labels["dshell.fw.kind"] == "stages"
        assert json.loads(task.labels[REQUEST_LABEL])["resources"]["mem"] == 200
    row = next(m for m in session.mounts() if m.target == "/j/fw/t")
    assert (row.type, row.options) == ("fake", {"fw": "t", "host": "/j", "kind": "stages"})
    listed = fwjobs.frameworks_on(host, "/j")
    assert [(f.name, f.kind, f.state, f.resources.cpus) for f in listed] == [
        ("t", "stages", "RUNNING", pytest.approx(0.1 + 2 * 0.5))
    ]
    host.tasks["3"].state = TaskState.STAGING  # requeued by its host
    assert fwjobs.frameworks_on(host, "/j")[0].state == "RECOVERING"
    tasks = fwjobs.framework_tasks(host, "t")
    assert tasks[0].name == "fw-t"
    source, opts = hosted.mount_source(host, REQ, fwjobs.announced(host, tasks), tasks)
    assert (source, opts) == (f"http://127.0.0.1:{port}", {"tasks": "3"})


def test_jobs_launch_that_fails_cancels_what_it_submitted(
    dshell_dirs: Dirs, health: tuple[int, list[str]]
) -> None:
    host = JobsHost(health[0])
    session = _session(dshell_dirs)
    with pytest.raises(DeploymentFailed) as err:
        fwjobs.launch(session, StagesKind(Stages(second="fail")), host, host.mount, REQ, 30)
    text = str(err.value)
    assert "fw-t-aux" in text and "exit 3" in text and "boom" in text
    assert err.value.code == ExitCode.ERROR
    assert sorted(host.killed) == ["1", "2", "3"]
    assert not fwjobs.framework_tasks(host, "t")
    assert all(m.target != "/j/fw/t" for m in session.mounts())


@pytest.mark.parametrize(
    "stages",
    [
        Stages(first="silent"),  # never announces
        Stages(path="/missing"),  # announces, but its probe never answers 2xx
    ],
)
def test_jobs_launch_times_out_and_cancels(
    dshell_dirs: Dirs, health: tuple[int, list[str]], stages: Stages
) -> None:
    host = JobsHost(health[0])
    session = _session(dshell_dirs)
    with pytest.raises(TimeoutExpired) as err:
        fwjobs.launch(session, StagesKind(stages), host, host.mount, REQ, timeout=0.3)
    assert "task 1 (fw-t) not ready within 0.3s" in str(err.value)
    assert host.killed == ["1"] and len(host.submitted) == 1  # the second stage never came


def test_jobs_refused_where_the_kind_has_no_job_form(
    dshell_dirs: Dirs, health: tuple[int, list[str]]
) -> None:
    host = JobsHost(health[0])
    with pytest.raises(UnsupportedError) as err:
        fwjobs.launch(_session(dshell_dirs), ServicesOnlyKind(), host, host.mount, REQ, 30)
    assert "nested frameworks on a cluster without services" in str(err.value)
    assert err.value.code == ExitCode.UNSUPPORTED and not host.submitted


def test_jobs_resolve_and_rm_from_the_hosts_tasks_alone(
    dshell_dirs: Dirs, health: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, hosted = JobsHost(health[0]), Stages()
    monkeypatch.setattr(StagesKind, "shared", hosted)
    session = _session(dshell_dirs)
    fwjobs.launch(session, StagesKind(), host, host.mount, REQ, 30)
    kind, source, opts = fwjobs.mount_source(session, host, "t", "/j/fw/t")
    assert (kind, source, opts) == ("fake", f"http://127.0.0.1:{health[0]}", {"tasks": "3"})
    done = fwjobs.rm(session, host, "/j/fw/t", "t", "/j", [], 10)
    assert (done.state, done.kind, done.resources.mem) == ("REMOVED", "stages", 200)
    assert sorted(host.killed) == ["1", "2", "3"] and hosted.removed == ["t"]
    assert not fwjobs.framework_tasks(host, "t")
    with pytest.raises(NotFoundError):
        fwjobs.mount_source(session, host, "t", "/j/fw/t")


def test_a_kind_names_its_job_form(health: tuple[int, list[str]]) -> None:
    class Named(ServicesOnlyKind):
        job_form = f"{__name__}:Stages"

    class Broken(ServicesOnlyKind):
        job_form = f"{__name__}:Nope"

    host = JobsHost(health[0])
    assert isinstance(Named().job_hosted(host), Stages)
    with pytest.raises(PluginError) as err:
        Broken().job_hosted(host)
    assert err.value.code == ExitCode.PLUGIN and ":Nope" in str(err.value)
