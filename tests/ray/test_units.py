"""The Ray plugin without Ray: mount sources, tokens, HTTP error mapping, the framework kind's
plan and services, and what ``run`` refuses before anything is submitted."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dshell.backend import Mount
from dshell.errors import (
    BackendError,
    ConfigError,
    ExitCode,
    NotFoundError,
    PluginError,
    UnreachableError,
    UnsupportedError,
    UsageError,
)
from dshell.frameworks import LaunchRequest
from dshell.model import Endpoint, Resources, RunSpec

from dshell_ray.backend import RayBackend
from dshell_ray.client import Address, parse_source, read_token
from dshell_ray.fwkind import (
    HEAD_OVERHEAD,
    MIN_OBJECT_STORE,
    WORKER_OVERHEAD,
    Plan,
    RayKind,
)


@pytest.mark.parametrize(
    ("source", "want"),
    [
        ("http://127.0.0.1:8265", Address("127.0.0.1", 8265)),
        ("http://head.example:31000/", Address("head.example", 31000)),
        ("http://[::1]:8265", Address("::1", 8265)),
    ],
)
def test_good_sources(source: str, want: Address) -> None:
    assert parse_source(source) == want


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("127.0.0.1:8265", "expected http://HOST:PORT"),
        ("https://h:8265", "expected http://HOST:PORT"),
        ("http://h", "port is required"),
        ("http://h:99999", "port is required"),
        ("http://h:8265/api", "no path"),
        ("http://u:p@h:8265", "no user info"),
        ("http://bad host:1", "bad host"),
    ],
)
def test_bad_sources_name_the_problem(source: str, words: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_source(source)
    assert words in info.value.message and info.value.code == ExitCode.USAGE
    assert "u:p" not in info.value.message


def test_token_from_file_env_or_none(tmp_path: Path) -> None:
    path = tmp_path / "tok"
    path.write_text("s3cret\n")
    assert read_token({"token_file": str(path)}, {}) == "s3cret"
    assert read_token({}, {"RAY_AUTH_TOKEN": "fromenv"}) == "fromenv"
    assert read_token({}, {}) is None
    with pytest.raises(ConfigError) as info:
        read_token({"token_file": str(tmp_path / "missing")}, {})
    assert "token_file=" in info.value.message
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_token({"token_file": str(tmp_path / "empty")}, {})


# ---- HTTP errors, against a tiny stand-in for the dashboard --------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        if auth != "Bearer good":
            self._send(401, b"Unauthorized")
        elif self.path == "/api/version":
            self._send(200, json.dumps({"ray_version": "2.60.0"}).encode())
        elif self.path.startswith("/api/jobs/gone"):
            self._send(404, b"Job gone does not exist")
        elif self.path.startswith("/api/jobs/broken"):
            self._send(500, b"Traceback (most recent call last):\nValueError: bad thing")
        else:
            self._send(200, b"not json")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _backend(source: str, tmp_path: Path, token: str | None = "good") -> RayBackend:
    opts = {"timeout": "5"}
    if token:
        (tmp_path / "tok").write_text(token)
        opts["token_file"] = str(tmp_path / "tok")
    return RayBackend(Mount(target="/ray", type="ray", source=source, options=opts))


def test_http_errors_map_to_exit_codes(dashboard: str, tmp_path: Path) -> None:
    backend = _backend(dashboard, tmp_path)
    backend.validate_mount()
    with pytest.raises(NotFoundError):
        backend.get_task("gone")
    with pytest.raises(BackendError) as info:
        backend.get_task("broken")
    assert "answered 500: ValueError: bad thing" in info.value.message
    with pytest.raises(BackendError, match="did not answer JSON"):
        backend.client.jobs()
    with pytest.raises(ConfigError) as refused:
        _backend(dashboard, tmp_path, token="wrong").validate_mount()
    assert "token was not accepted" in refused.value.message and "wrong" not in str(refused.value)
    with pytest.raises(ConfigError, match="needs a token"):
        _backend(dashboard, tmp_path, token=None).client.jobs()


def test_unreachable_dashboard(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UnreachableError) as info:
        _backend(f"http://127.0.0.1:{port}", tmp_path).list_agents()
    assert info.value.code == ExitCode.UNREACHABLE


def test_bad_mount_options(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="poll"):
        RayBackend(Mount(target="/ray", type="ray", source="http://h:1", options={"poll": "0"}))
    with pytest.raises(UsageError, match="expected http"):
        RayBackend(Mount(target="/ray", type="ray", source="h:1")).validate_mount()


@pytest.mark.parametrize(
    ("spec", "flag"),
    [
        (RunSpec(command=["x"], ports=["http"]), "--port"),
        (RunSpec(command=["x"], volumes=["data:/d"]), "--volume"),
        (RunSpec(command=["x"], resources=Resources(cpus=1, mem=1, disk=10)), "--disk"),
        (RunSpec(command=["x"], workdir="/tmp"), "--workdir"),
    ],
)
def test_run_refuses_what_a_job_cannot_carry(spec: RunSpec, flag: str, tmp_path: Path) -> None:
    backend = _backend("http://127.0.0.1:1", tmp_path)  # nothing is sent: refused before
    with pytest.raises(UnsupportedError) as info:
        backend.submit(spec)
    assert flag in info.value.message and info.value.code == ExitCode.UNSUPPORTED


# ---- the framework kind ----------------------------------------------------------------------


def _req(workers: str | None = "2", cpus: float = 3, mem: float = 4096) -> LaunchRequest:
    opts = {} if workers is None else {"workers": workers}
    return LaunchRequest(
        name="r1", kind="ray", host="/local", options=opts, resources=Resources(cpus=cpus, mem=mem)
    )


def test_plan_splits_the_share() -> None:
    plan = Plan(_req())
    assert plan.workers == 2 and plan.cpus == 1.0
    share = (4096 - HEAD_OVERHEAD - 2 * WORKER_OVERHEAD) / 3
    assert plan.share == pytest.approx(share)
    assert plan.object_store == pytest.approx(max(MIN_OBJECT_STORE, 0.3 * share))
    assert plan.memory + plan.object_store == pytest.approx(share)
    assert plan.ray_resources()[0] == "--num-cpus=1"
    assert Plan(_req(workers=None)).workers == 1


@pytest.mark.parametrize(
    ("req", "words"),
    [
        (_req(workers="x"), "-o workers='x'"),
        (_req(workers="65"), "-o workers='65'"),
        (_req(mem=1500), "--mem 1500 MiB is too little"),
        (_req(cpus=0), "--cpus is required"),
        (
            LaunchRequest(name="r", kind="ray", host="/l", resources=Resources(1, 4096, ports=5)),
            "--ports does not apply",
        ),
    ],
)
def test_plan_refuses_bad_requests(req: LaunchRequest, words: str) -> None:
    with pytest.raises(UsageError) as info:
        Plan(req)
    assert words in info.value.message


class _Host:
    """Just what the kind asks of an embedded engine host: its runtime dir."""

    name = "local"

    def __init__(self, runtime: Path) -> None:
        status = SimpleNamespace(socket=str(runtime / "engine.sock"))
        self.client = SimpleNamespace(status=lambda: status)


def test_services_in_two_batches_then_mount(tmp_path: Path) -> None:
    kind, host, req = RayKind(), _Host(tmp_path), _req()
    (head,) = kind.services(host, req, {})  # type: ignore[arg-type]
    assert head.name == "fw-r1" and head.instances == 1 and head.shell
    line = head.command[0]
    for flag in ("--head", "--port=$PORT_GCS", "--dashboard-host=127.0.0.1", "--block"):
        assert flag in line
    assert "-m dshell_ray.node 127.0.0.1 " in line and "--worker-port-list=$PORT_W0," in line
    names = {p.name for p in head.ports}
    assert {"gcs", "dashboard", "agent_grpc", "dash_metrics", "w15"} <= names
    assert head.env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" not in head.env
    token = Path(head.env["RAY_AUTH_TOKEN_PATH"])
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    assert head.health_checks[0].path == "/api/gcs_healthz"
    assert head.resources.mem == pytest.approx(HEAD_OVERHEAD + Plan(req).share)
    up = {
        "fw-r1": [
            Endpoint(service="fw-r1", task_id="t", instance=0, port_name=n, host="h", port=p)
            for n, p in (("gcs", 31000), ("dashboard", 31001))
        ]
    }
    (workers,) = kind.services(host, req, up)  # type: ignore[arg-type]
    assert workers.name == "fw-r1-workers" and workers.instances == 2
    assert '--address="$gcs"' in workers.command[0] and "--head" not in workers.command[0]
    assert workers.env["RAY_AUTH_TOKEN_PATH"] == str(token)  # the same cluster token
    assert kind.services(host, req, {**up, "fw-r1-workers": []}) == []  # type: ignore[arg-type]
    source, opts = kind.mount_source(host, req, up)  # type: ignore[arg-type]
    assert (source, opts) == ("http://127.0.0.1:31001", {"token_file": str(token)})
    kind.remove(host, req)  # type: ignore[arg-type]
    assert not token.parent.exists()


def test_kind_check(tmp_path: Path) -> None:
    kind = RayKind()
    with pytest.raises(UsageError, match="no option 'gpus'"):
        bad = LaunchRequest(name="r1", kind="ray", host="/local", options={"gpus": "1"})
        kind.check(_Host(tmp_path), bad)  # type: ignore[arg-type]
    zk = SimpleNamespace(name="zk")  # a host that runs nothing
    with pytest.raises(UnsupportedError, match="backend 'zk' does not support Ray clusters"):
        kind.check(zk, _req())  # type: ignore[arg-type]
    deep = tmp_path / ("d" * 60)
    with pytest.raises(UsageError, match="too long for Unix sockets"):
        kind.check(_Host(deep), _req())  # type: ignore[arg-type]


def test_kind_check_names_the_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dshell_ray.fwkind as fwkind

    monkeypatch.setattr(fwkind.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PluginError) as info:
        RayKind().check(_Host(Path("/tmp/x")), _req())  # type: ignore[arg-type]
    assert info.value.code == ExitCode.PLUGIN and info.value.hint == "pip install 'dshell[ray]'"
