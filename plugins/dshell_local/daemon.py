"""The engine daemon: ``python -m dshell_local.daemon [--daemonize]``.

Start-up: take the daemon locks (``RUNTIME/engine.pid`` and ``STATE/engine.lock``, flock),
open the database, connect to the executor (starting it if needed), load and reconcile the
tasks (recovery), then listen on ``RUNTIME/engine.sock``. Logs go to ``STATE/logs/engine.log``,
rotated. SIGTERM or ``POST /v1/shutdown`` stop it; tasks keep running unless the shutdown asks
to kill them.

The runtime dir can vanish under a running engine: ``systemd-logind`` removes
``$XDG_RUNTIME_DIR`` when the user's last session ends, and tmp cleaners remove old dirs. The
engine checks its socket every second and, when it is gone, makes the dir again, takes the
lock there and listens anew, so the next ``dshell`` finds the same engine (with its tasks)
instead of starting a second one. The state-dir lock makes sure of that in the meantime: an
engine started while the old one has not rebound yet exits, and the caller waits for the
socket. (The executor does the same for its socket and journal.) A removed database is
another matter: the engine stops and stops its tasks, which nothing could account for.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import hashlib
import logging
import logging.handlers
import os
import signal
import sqlite3
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from dshell import __version__, paths
from dshell.errors import ConfigError

from . import api, recovery
from . import config as engine_config
from .batch import JobController, clock_from_env
from .crash import CrashPoints
from .engine import Engine
from .execadapter import connect_executor
from .execport import ExecutorError, ExecutorPort
from .execsession import exec_handler
from .maintenance import MaintenanceController
from .preemptor import grace_from
from .routes import CONTEXT, Context, add_routes
from .sandbox import Sandboxes
from .server import Listeners, make_app, tls_context
from .services import ServiceController
from .state import Store
from .stats import StatsSampler
from .streams import add_stream_routes
from .tasks import utcnow

log = logging.getLogger("dshell_local")
FAILED_MARK = "dshell engine failed:"  # control.start looks for it in engine.out
SOCKET_CHECK_INTERVAL = 1.0  # seconds between checks that RUNTIME/engine.sock is still ours


class Daemon:
    """One engine process: its state, listeners and shutdown."""

    def __init__(self, cfg: engine_config.EngineConfig) -> None:
        self.cfg = cfg
        self.runtime = paths.runtime_dir()
        self.state_dir = paths.state_dir()
        self.socket_path = self.runtime / api.SOCKET_NAME
        self.started_at = utcnow()
        self.stopping = asyncio.Event()
        self.kill_tasks = False
        self.hello: dict[str, object] = {}
        self.recovered: dict[str, int] = {}
        self.reconnecting = False
        self.lock_fd: int | None = None  # the runtime lock, replaced when the dir is remade

    def cgroup_name(self) -> str:
        digest = hashlib.sha1(str(self.runtime).encode()).hexdigest()[:10]
        return f"dshell-{digest}"

    async def run(self) -> None:
        store = Store(self.state_dir / "engine.db")
        executor = await connect_executor(
            self.runtime,
            self.cgroup_name(),
            self.state_dir / "logs" / "executor.log",
            self.cfg.engine.isolation,
        )
        engine = Engine(
            self.cfg,
            store,
            executor,
            Sandboxes(self.state_dir / "sandboxes", self.cfg.sandbox.spares),
            CrashPoints.from_env(),
        )
        self.engine = engine
        self.hello = await executor.hello()
        self._check_protocol()
        recovery.load(engine)
        clock, max_sleep = clock_from_env()
        services = ServiceController(engine, await self._announcer())
        services.load()  # before reconciling: exits found now count as the services' crashes
        jobs = JobController(engine, clock, max_sleep)
        jobs.load()  # likewise: exits found now end the jobs' runs
        maint = MaintenanceController(engine, services, jobs, clock, max_sleep)
        engine.preemption.grace_of = grace_from(services, jobs)  # victims' own kill grace
        maint.load()  # before any placement: agents in maintenance are offered to nobody
        self.recovered = await recovery.reconcile(engine)
        engine.set_ready()
        engine.sandboxes.adopt_spares()  # a listing and a few stats: those of the last engine
        engine.refill_sandboxes(after=0)
        services.start()
        jobs.start()
        maint.start()
        executor.on_lost(lambda: engine.spawn_bg(self._reconnect(engine)))
        app = make_app(self.cfg.token)
        sampler = StatsSampler(engine)
        app[CONTEXT] = Context(
            engine, sampler, self.status, self.request_stop, services, jobs, maint
        )
        add_routes(app)
        add_stream_routes(app)
        app.router.add_get(f"{api.API_PREFIX}/tasks/{{id}}/exec", exec_handler)
        listeners = Listeners(app)
        await listeners.start(self.socket_path, self._tcp(), self._tls())
        log.info("engine %s listening on %s (pid %d)", __version__, self.socket_path, os.getpid())
        # What start-up made (modules, the web app, recovered records) lives as long as the
        # engine: frozen, the cycle collector no longer walks it. Its full collections had
        # stalled the loop ~40 ms at the start of every burst of 1,000 launches (the burst's
        # new objects trigger them); 55 -> 10 ms of collection per burst, measured.
        gc.freeze()
        background = asyncio.gather(
            self._gc_loop(engine),
            self._sample_loop(engine, sampler),
            self._socket_watch(listeners),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, False)
        await self.stopping.wait()
        await services.close()  # first: nothing may relaunch the instances stopped below
        await jobs.close()
        await maint.close()
        if services.announcer is not None:
            await services.announcer.close()  # its ephemeral members go with the session
        await self._shutdown(engine, executor, store, listeners, background)

    def _check_protocol(self) -> None:
        """An executor started by an older dshell outlives upgrades (it holds the tasks): say
        what it cannot do until it is replaced."""
        from .executor.protocol import PROTOCOL_VERSION

        theirs = _int(self.hello.get("protocol")) or 1
        if theirs < PROTOCOL_VERSION:
            log.warning(
                "the executor (pid %s) speaks protocol %d, older than this engine's %d: "
                "COMMAND health checks are not performed until it is replaced "
                "(`dshell engine stop --kill-tasks`, then start)",
                self.hello.get("executor_pid"),
                theirs,
                PROTOCOL_VERSION,
            )

    async def _announcer(self) -> Any:
        """The ZooKeeper announcer when the engine is configured with an ensemble (it never
        fails the start: an unreachable ensemble is retried in the background)."""
        if self.cfg.zookeeper is None:
            return None
        from .announce import ServerSetAnnouncer

        announcer = ServerSetAnnouncer.from_config(self.cfg.zookeeper)
        await announcer.start()
        return announcer

    async def _shutdown(
        self,
        engine: Engine,
        executor: ExecutorPort,
        store: Store,
        listeners: Listeners,
        background: asyncio.Future[Any],
    ) -> None:
        log.info("stopping (kill_tasks=%s)", self.kill_tasks)
        if self.kill_tasks:
            await engine.kill_all()
        background.cancel()
        await asyncio.gather(background, return_exceptions=True)
        await store.commit()
        if self.socket_path.exists():
            self.socket_path.unlink()
        await listeners.stop()
        await engine.close()
        store.close()
        await executor.close()
        log.info("stopped")

    async def _reconnect(self, engine: Engine) -> None:
        """The executor connection dropped: reconnect (restarting it) and reconcile."""
        if self.reconnecting:
            return
        self.reconnecting = True
        delay = 0.1
        try:
            while not self.stopping.is_set():
                await asyncio.sleep(delay)
                try:
                    self.hello = await engine.executor.hello()
                    await recovery.reconcile(engine)
                    return
                except ExecutorError as exc:
                    log.warning("executor still unreachable: %s", exc)
                    delay = min(delay * 2, 5.0)
        finally:
            self.reconnecting = False

    def request_stop(self, kill_tasks: bool) -> None:
        self.kill_tasks = self.kill_tasks or kill_tasks
        self.stopping.set()

    def _tcp(self) -> tuple[str, int] | None:
        if self.cfg.tcp is None:
            return None
        host, _, port = self.cfg.tcp.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def _tls(self) -> ssl.SSLContext | None:
        tcp = self.cfg.tcp
        if tcp is None or not tcp.cert or not tcp.key:
            return None
        return tls_context(tcp.cert, tcp.key)

    def status(self) -> api.EngineStatus:
        iso = self.hello.get("isolation")
        isolation = api.Isolation(**iso) if isinstance(iso, dict) else api.Isolation()
        return api.EngineStatus(
            pid=os.getpid(),
            version=__version__,
            started_at=self.started_at,
            socket=str(self.socket_path),
            state_dir=str(self.state_dir),
            config_file=self.cfg.path,
            executor=api.ExecutorInfo(
                pid=_int(self.hello.get("executor_pid")),
                version=_str(self.hello.get("version")),
                boot_id=_str(self.hello.get("boot_id")),
                protocol=_int(self.hello.get("protocol")),
            ),
            isolation=isolation,
            active_tasks=len(self.engine.records),
            agents=len(self.engine.allocator.agents),
            last_event=self.engine.bus.committed,
            tcp=self.cfg.tcp.listen if self.cfg.tcp else None,
            recovery=self.recovered,
            volumes=self.engine.volumes.mode.describe(),
        )

    async def _sample_loop(self, engine: Engine, sampler: StatsSampler) -> None:
        """Keep a recent usage sample for the agents' ``used`` (cheap: one executor call)."""
        while True:
            await asyncio.sleep(self.cfg.engine.stats_interval)
            if engine.records:
                await sampler.sample()

    async def _socket_watch(self, listeners: Listeners) -> None:
        """Listen again when the socket (or the whole runtime dir) was removed (see the module
        docstring); stop, killing the tasks, when the database was removed: nothing could
        ever account for them again."""
        ours = os.stat(self.socket_path).st_ino
        db = self.state_dir / "engine.db"
        db_ino = os.stat(db).st_ino
        while True:
            await asyncio.sleep(SOCKET_CHECK_INTERVAL)
            if not _same_inode(db, db_ino):
                log.error("%s was removed: stopping, and stopping the tasks", db)
                self.request_stop(kill_tasks=True)
                return
            if _same_inode(self.socket_path, ours):
                continue
            try:
                self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
                lock = take_lock(self.runtime, api.DAEMON_LOCK_NAME)
                if lock is None:  # an engine being started holds it: it will give up
                    continue
                if self.lock_fd is not None:
                    os.close(self.lock_fd)
                self.lock_fd = lock
                await listeners.bind_unix(self.socket_path)
                ours = os.stat(self.socket_path).st_ino
            except OSError as exc:
                log.error("cannot listen again on %s: %s", self.socket_path, exc)
                continue
            log.warning("%s was removed: listening on it again", self.socket_path)

    async def _gc_loop(self, engine: Engine) -> None:
        """Remove finished sandboxes by age and total size (``[sandbox]`` in engine.toml)."""
        cfg = self.cfg.sandbox
        while True:
            await asyncio.sleep(cfg.gc_interval)
            ended = engine.store.finished_times()
            finished = engine.sandboxes.finished(engine.records, ended)
            removed = engine.sandboxes.gc(
                finished, cfg.max_age, cfg.max_total_mb * 1024 * 1024, time.time()
            )
            if removed:
                log.info("removed %d finished sandboxes", len(removed))
            forgotten = engine.store.trim_tasks(self.cfg.engine.task_history)
            if forgotten:
                await engine.store.commit()
                log.info("forgot %d finished tasks beyond [engine] task_history", forgotten)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def setup_logging(cfg: engine_config.EngineConfig) -> None:
    logs = paths.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        logs / "engine.log",
        maxBytes=cfg.engine.log_max_bytes,
        backupCount=cfg.engine.log_backups,
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _same_inode(path: Path, ino: int) -> bool:
    try:
        return os.stat(path).st_ino == ino
    except FileNotFoundError:
        return False


def take_lock(directory: Path, name: str) -> int | None:
    """A daemon lock's fd (held for the process's life, our pid in the file), or None if
    another engine has it."""
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def main(argv: list[str] | None = None) -> int:
    """Run the engine in the foreground (``--daemonize``: detach first)."""
    parser = argparse.ArgumentParser(prog="dshell_local.daemon")
    parser.add_argument("--daemonize", action="store_true", help="fork and detach first")
    args = parser.parse_args(argv)
    if args.daemonize and os.fork() > 0:  # small process, before any heavy work
        os._exit(0)
    try:
        cfg = engine_config.load()
    except ConfigError as exc:
        print(f"{FAILED_MARK} {exc}", file=sys.stderr, flush=True)
        return 3
    setup_logging(cfg)
    lock = take_lock(paths.runtime_dir(), api.DAEMON_LOCK_NAME)
    if lock is None:
        log.error("another engine holds %s; exiting", paths.runtime_dir() / api.DAEMON_LOCK_NAME)
        return 1
    state_lock = take_lock(paths.state_dir(), api.STATE_LOCK_NAME)
    if state_lock is None:  # not a failed start: the caller waits for that engine's socket
        holder = (paths.state_dir() / api.STATE_LOCK_NAME).read_text().strip() or "?"
        msg = f"the engine (pid {holder}) of {paths.state_dir()} runs; it listens again soon"
        log.error("%s; exiting", msg)
        print(msg, file=sys.stderr, flush=True)
        os.close(lock)
        return 1
    daemon = Daemon(cfg)
    daemon.lock_fd = lock
    profile = os.environ.get("DSHELL_ENGINE_PROFILE")  # a path: cProfile stats for benchmarks
    try:
        if profile:
            import cProfile

            cProfile.runctx("asyncio.run(daemon.run())", globals(), locals(), profile)
        else:
            asyncio.run(daemon.run())
    except (ExecutorError, OSError, sqlite3.Error) as exc:
        log.error("engine failed: %s", exc, exc_info=True)
        print(f"{FAILED_MARK} {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if daemon.lock_fd is not None:
            os.close(daemon.lock_fd)
        os.close(state_lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
