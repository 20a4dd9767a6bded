"""The engine's configuration: ``config_dir()/engine.toml`` or ``$DSHELL_ENGINE_CONFIG``.

Example::

    [engine]
    kill_grace = 5.0            # seconds between SIGTERM and SIGKILL
    event_retention = 100000    # events kept for `events --since`
    task_history = 100000       # finished tasks remembered (ps -a, inspect); older are forgotten
    pids_limit = 4096           # per task (cgroup pids.max)
    isolation = "auto"          # cgroups when usable, else rlimits; "rlimit"/"none": no
                                # cgroups ($DSHELL_ISOLATION overrides; fixed per executor)
    stats_interval = 2.0        # usage sampling while tasks run (agents' `used`)
    log_max_bytes = 10485760    # engine.log rotation
    log_backups = 5
    maintenance_lead = 600.0    # drain an agent this long before its maintenance window
                                # (at least kill_grace + 30 s)

    [sandbox]
    max_age = 604800            # finished sandboxes older than this (s) are removed
    max_total_mb = 10240        # ... and the oldest go first while all of them exceed this
    gc_interval = 300.0
    spares = 1024               # at most this many empty sandboxes kept ready (as many as the
                                # largest burst of launches seen): a launch renames one in place

    [roles.prod]
    weight = 2.0

    [[agents]]
    hostname = "node-a"
    cpus = 2
    mem = 2048
    ports = [[31000, 31499]]
    attributes = { rack_id = "r1" }

    [api.tcp]                   # off unless given; then TLS and a token are mandatory
    listen = "127.0.0.1:7443"
    cert = "/path/cert.pem"
    key = "/path/key.pem"
    token_file = "/path/token"

    [zookeeper]                 # off unless given: announce healthy service instances
    url = "zk://127.0.0.1:2181/aurora"   # ensemble and base path (Aurora serversets)
    credentials_file = "/path/zk-digest" # "user:password" (or credentials = "user:password")
    session_timeout = 10.0

Without ``[[agents]]`` the engine has one agent with this host's cpus, memory, disk and the
ports 31000-32000.
"""

from __future__ import annotations

import os
import shutil
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec
from dshell import paths
from dshell.errors import ConfigError
from dshell.maintenance import attribute_problem

from dshell_zk.url import ZkTarget, parse_zk_url, split_credentials

DEFAULT_PORTS = (31000, 32000)
ISOLATIONS = ("auto", "rlimit", "none")


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str | None = None
    hostname: str | None = None
    cpus: float | None = None
    mem: float | None = None  # MiB
    disk: float | None = None  # MiB
    ports: list[tuple[int, int]] | None = None
    attributes: dict[str, str] = {}


class RoleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    weight: float = 1.0


class EngineSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kill_grace: float = 5.0
    event_retention: int = 100_000
    task_history: int = 100_000  # finished tasks kept (`ps -a`, `inspect`); older ones go
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    stats_interval: float = 2.0
    pids_limit: int = 4096
    isolation: str = "auto"  # auto: cgroups when usable, else rlimits | rlimit | none (= rlimit)
    maintenance_lead: float = 600.0  # an agent drains this long before its maintenance window


class SandboxSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_age: float = 7 * 24 * 3600.0
    max_total_mb: float = 10 * 1024.0
    gc_interval: float = 300.0
    spares: Annotated[int, msgspec.Meta(ge=0, le=100000)] = 1024


class TcpSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    listen: str
    cert: str | None = None
    key: str | None = None
    token: str | None = None
    token_file: str | None = None


class ApiSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    tcp: TcpSection | None = None


class ZookeeperSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str
    credentials: str | None = None  # "user:password" (digest)
    credentials_file: str | None = None  # a file holding "user:password"
    session_timeout: float = 10.0


@dataclass(frozen=True)
class ZookeeperConfig:
    """The resolved ``[zookeeper]`` section (service discovery; see announce.py)."""

    url: str
    target: ZkTarget
    session_timeout: float
    credentials: str | None = field(default=None, repr=False)  # a secret: never shown


class FileConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    engine: EngineSection = msgspec.field(default_factory=EngineSection)
    sandbox: SandboxSection = msgspec.field(default_factory=SandboxSection)
    roles: dict[str, RoleConfig] = {}
    agents: list[AgentConfig] = []
    api: ApiSection = msgspec.field(default_factory=ApiSection)
    zookeeper: ZookeeperSection | None = None


class AgentSpec(msgspec.Struct, kw_only=True):
    """A fully resolved agent."""

    id: str
    hostname: str
    cpus: float
    mem: float
    disk: float
    ports: list[tuple[int, int]]
    attributes: dict[str, str] = {}


class EngineConfig(msgspec.Struct, kw_only=True):
    """The resolved configuration the engine runs with."""

    path: str | None
    engine: EngineSection
    sandbox: SandboxSection
    roles: dict[str, RoleConfig]
    agents: list[AgentSpec]
    tcp: TcpSection | None = None
    token: str | None = None
    zookeeper: ZookeeperConfig | None = None


def config_path() -> Path:
    override = os.environ.get("DSHELL_ENGINE_CONFIG")
    return Path(override) if override else paths.config_dir() / "engine.toml"


def load(path: Path | None = None) -> EngineConfig:
    """Read and validate the config file (a missing default file means defaults)."""
    path = path or config_path()
    explicit = "DSHELL_ENGINE_CONFIG" in os.environ
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: engine config file not found") from None
        return resolve(FileConfig(), None)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        parsed = msgspec.convert(raw, FileConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return resolve(parsed, str(path))


def resolve(parsed: FileConfig, path: str | None) -> EngineConfig:
    """Fill in host defaults and check the agents and the TCP listener."""
    where = path or "engine defaults"
    agents = [_resolve_agent(a, i, where) for i, a in enumerate(parsed.agents or [AgentConfig()])]
    _check_agents(agents, where)
    for name, role in parsed.roles.items():
        if role.weight <= 0:
            raise ConfigError(f"{where}: roles.{name}.weight must be > 0")
    token = _check_tcp(parsed.api.tcp, where)
    isolation = os.environ.get("DSHELL_ISOLATION") or parsed.engine.isolation
    if isolation not in ISOLATIONS:
        raise ConfigError(
            f"{where}: engine.isolation (or $DSHELL_ISOLATION) must be one of "
            f"{', '.join(ISOLATIONS)}, not {isolation!r}"
        )
    parsed.engine.isolation = isolation
    if not 0 <= parsed.engine.maintenance_lead <= 7 * 86400:  # also rejects NaN
        raise ConfigError(f"{where}: engine.maintenance_lead must be 0 to 604800 seconds")
    return EngineConfig(
        path=path,
        engine=parsed.engine,
        sandbox=parsed.sandbox,
        roles=parsed.roles,
        agents=agents,
        tcp=parsed.api.tcp,
        token=token,
        zookeeper=_check_zookeeper(parsed.zookeeper, where),
    )


def _host_mem_mib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return float(int(line.split()[1]) // 1024)
    except OSError:
        pass
    return 1024.0


def _resolve_agent(cfg: AgentConfig, index: int, where: str) -> AgentSpec:
    hostname = cfg.hostname or socket.gethostname()
    ident = cfg.id or ("local" if index == 0 and not cfg.hostname else hostname)
    if not ident.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"{where}: agents[{index}].id {ident!r} must be alphanumeric")
    disk = cfg.disk
    if disk is None:
        paths.state_dir().mkdir(parents=True, exist_ok=True)
        disk = float(shutil.disk_usage(paths.state_dir()).total // (1024 * 1024))
    for name, value in cfg.attributes.items():
        if problem := attribute_problem(name, value):
            raise ConfigError(f"{where}: agent {ident!r}: {problem}")
    ports = cfg.ports if cfg.ports is not None else [DEFAULT_PORTS]
    for lo, hi in ports:
        if not 0 < lo <= hi < 65536:
            raise ConfigError(f"{where}: agent {ident!r}: bad port range {lo}-{hi}")
    return AgentSpec(
        id=ident,
        hostname=hostname,
        cpus=float(cfg.cpus if cfg.cpus is not None else (os.cpu_count() or 1)),
        mem=float(cfg.mem if cfg.mem is not None else _host_mem_mib()),
        disk=disk,
        ports=[(int(lo), int(hi)) for lo, hi in ports],
        attributes=dict(cfg.attributes),
    )


def _check_agents(agents: list[AgentSpec], where: str) -> None:
    seen: set[str] = set()
    for a in agents:
        if a.id in seen:
            raise ConfigError(f"{where}: two agents have the id {a.id!r}; set distinct ids")
        seen.add(a.id)
    ranges = [(lo, hi, a.id) for a in agents for lo, hi in a.ports]
    for i, (lo1, hi1, a1) in enumerate(ranges):
        for lo2, hi2, a2 in ranges[i + 1 :]:
            if lo1 <= hi2 and lo2 <= hi1:
                raise ConfigError(
                    f"{where}: port ranges overlap: agent {a1!r} {lo1}-{hi1} "
                    f"and agent {a2!r} {lo2}-{hi2}"
                )


def _check_tcp(tcp: TcpSection | None, where: str) -> str | None:
    if tcp is None:
        return None
    if not tcp.cert or not tcp.key:
        raise ConfigError(f"{where}: api.tcp needs TLS: set cert and key")
    token = tcp.token
    if tcp.token_file:
        try:
            token = Path(tcp.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: api.tcp.token_file: {exc}") from exc
    if not token or len(token) < 16:
        raise ConfigError(f"{where}: api.tcp needs a token of at least 16 characters")
    host, _, port = tcp.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{where}: api.tcp.listen must be HOST:PORT, not {tcp.listen!r}")
    return token


def _check_zookeeper(zk: ZookeeperSection | None, where: str) -> ZookeeperConfig | None:
    if zk is None:
        return None
    try:
        target = parse_zk_url(zk.url)
    except ValueError as exc:
        raise ConfigError(f"{where}: zookeeper.url: {exc}") from None
    if not 0 < zk.session_timeout <= 3600:  # also rejects NaN
        raise ConfigError(
            f"{where}: zookeeper.session_timeout must be a number of seconds in (0, 3600], "
            f"not {zk.session_timeout!r}"
        )
    if zk.credentials is not None and zk.credentials_file is not None:
        raise ConfigError(f"{where}: zookeeper: set credentials or credentials_file, not both")
    secret, field_name = zk.credentials, "zookeeper.credentials"
    if zk.credentials_file is not None:
        field_name = "zookeeper.credentials_file"
        try:
            secret = Path(zk.credentials_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{where}: {field_name} {zk.credentials_file!r}: {why}") from None
    if secret is not None:
        try:
            split_credentials(secret, f"{where}: {field_name}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return ZookeeperConfig(
        url=zk.url, target=target, session_timeout=zk.session_timeout, credentials=secret
    )
