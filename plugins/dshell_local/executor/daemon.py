"""Executor process setup: lock, session, subreaper, signals, recovery, socket, main loop."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import logging.handlers
import os
import re
import resource
import signal
import socket
import sys
import threading
from typing import NamedTuple

from . import VERSION, adopt, checkrun, procfs
from .cgdiscover import discover
from .cgroups import Cgroups
from .journal import Journal
from .loop import Loop
from .protocol import ExitedEvent, HelloResult, Isolation
from .server import Server
from .spawner import Spawner
from .tasks import TaskManager

log = logging.getLogger("dshell.executor")

EXIT_USAGE = 2
EXIT_LOCKED = 3
RUNTIME_CHECK_INTERVAL = 2.0  # seconds between checks that executor.sock is still ours
_PR_SET_CHILD_SUBREAPER = 36
_RLIMIT_DETAIL = (
    "enforced: mem_mb as RLIMIT_AS, set with prlimit(2) right after exec (posix_spawn cannot "
    "set rlimits in the child); not enforced: cpus, pids (RLIMIT_NPROC counts per user); "
    "sweep finds processes by DSHELL_TASK_ID, process group and session"
)


class Config(NamedTuple):
    """The executor's command line."""

    runtime_dir: str
    cgroup_name: str
    log_path: str | None
    idle_exit: float
    isolation: str  # auto | rlimit
    ready_fd: int | None


class LockHeld(Exception):
    """Another executor holds the runtime dir's lock."""

    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


def take_lock(runtime_dir: str) -> int:
    """flock ``executor.lock`` for the life of the process; raise LockHeld if taken."""
    fd = os.open(
        os.path.join(runtime_dir, "executor.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise LockHeld(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % os.getpid(), 0)
    return fd


def _setup_process(cfg: Config) -> None:
    if os.getsid(0) != os.getpid():
        try:
            os.setsid()
        except PermissionError:  # already a process-group leader: keep the session we have
            log.warning("setsid failed: still in session %d", os.getsid(0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.error("PR_SET_CHILD_SUBREAPER failed: %s", os.strerror(ctypes.get_errno()))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # one fd per connection, pty and re-adopted task
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.umask(0o022)
    os.chdir("/")


def _close_inherited_fds(keep: int | None) -> None:
    """Close every fd above stdio we were started with (but the ready pipe): a daemon that keeps
    its starter's pipes open makes ``$(…)`` and log readers wait forever, and passes the fds on
    to every task."""
    top = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if keep is None:
        os.closerange(3, top)
    else:
        os.closerange(3, keep)
        os.closerange(keep + 1, top)


def _setup_logging(path: str | None) -> None:
    root = logging.getLogger("dshell.executor")
    root.setLevel(logging.INFO)
    if path:
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=1 << 20, backupCount=3
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    else:
        handler = logging.NullHandler()
    root.addHandler(handler)


def _protect_from_oom() -> bytes | None:
    """oom_score_adj -1000 for the executor (see cgroups.py); returns the value to give tasks."""
    try:
        with open("/proc/self/oom_score_adj", "r+b") as f:
            original = f.read().strip()
            f.seek(0)
            f.write(b"-1000")
    except OSError as exc:  # no CAP_SYS_RESOURCE: cgroups.py narrows the window instead
        log.info("oom_score_adj -1000 refused (%s): leaving memory cgroups early", exc.strerror)
        return None
    return original


def _listen(runtime_dir: str) -> socket.socket:
    path = os.path.join(runtime_dir, "executor.sock")
    try:
        os.unlink(path)  # a stale socket of a dead executor (we hold the lock)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600: no window where others could connect
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread else "?"
    log.error("thread %s failed", name, exc_info=args.exc_value)


def _install_signals(loop: Loop) -> None:
    def stop(signum: int, frame: object) -> None:
        loop.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select via the fd
    signal.set_wakeup_fd(loop.wake_w, warn_on_full_buffer=False)
    threading.excepthook = _log_thread_crash


def run(cfg: Config) -> int:
    """Run the executor until idle exit or SIGTERM; returns the exit status."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", cfg.cgroup_name):
        print(f"dshell-executor: --cgroup-name {cfg.cgroup_name!r}: use letters, digits, "
              "'_', '.' and '-' (one directory name)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    _close_inherited_fds(cfg.ready_fd)
    os.makedirs(cfg.runtime_dir, mode=0o700, exist_ok=True)
    try:
        lock_fd = take_lock(cfg.runtime_dir)
    except LockHeld as held:
        print(f"dshell-executor: another executor (pid {held.pid}) already serves "
              f"{cfg.runtime_dir}", file=sys.stderr)  # fmt: skip
        return EXIT_LOCKED
    _setup_logging(cfg.log_path)
    _setup_process(cfg)
    loop = Loop()
    _install_signals(loop)
    found = discover(cfg.cgroup_name, cfg.isolation)
    cg = Cgroups(found) if found.hierarchies else None
    if cg is not None:
        cg.claim()
        cg.sweep_abandoned()
    child_adj = _protect_from_oom() if cg and "memory" in cg.controllers else None
    if cg is not None and child_adj is None and cg.v2:  # v1 places from a non-leader thread
        cg.early_memory_leave = True
    isolation = (
        cg.isolation() if cg else Isolation("rlimit", [], f"{found.detail}; {_RLIMIT_DETAIL}")
    )
    journal = Journal(cfg.runtime_dir)
    journal_boot, records = journal.load()
    boot = procfs.boot_id()
    server: Server | None = None

    def emit(event: ExitedEvent) -> None:
        if server is not None:
            server.emit(event)

    mgr = TaskManager(loop, cg, journal, boot, Spawner(child_adj), emit)
    adopt.recover(mgr, records, journal_boot)
    journal.compact(boot, {t: k.rec for t, k in mgr.tasks.items()})
    hello = HelloResult(os.getpid(), VERSION, boot, isolation)
    server = Server(loop, _listen(cfg.runtime_dir), mgr, lambda: hello, cfg.idle_exit)
    log.info("executor %s ready in %s (%s; %d known tasks)", VERSION, cfg.runtime_dir,
             isolation.detail, len(mgr.tasks))  # fmt: skip
    watch = RuntimeWatch(cfg.runtime_dir, loop, server, mgr, journal, lock_fd)
    _announce_ready(cfg.ready_fd)
    _detach_stdio()
    try:
        _main_loop(loop, server, mgr)
    except BaseException:  # stderr is /dev/null by now: the log is the only witness
        log.exception("executor failed")
        raise
    finally:
        _shutdown(cfg, loop, server, mgr, journal)
        os.close(watch.lock_fd)
    return 0


class RuntimeWatch:
    """Make the runtime dir, lock, socket and journal again when the dir was removed under a
    running executor (``systemd-logind`` removes ``$XDG_RUNTIME_DIR`` at logout; see
    ``dshell_local/daemon.py``): without it, a restarted engine could not reach this executor
    and an executor restart would find no journal, so its running tasks would be lost. An
    executor without tasks has nothing to keep: it exits instead (a test or a benchmark
    removing its temporary dirs must not see them made again)."""

    def __init__(self, runtime_dir: str, loop: Loop, server: Server, mgr: TaskManager,
                 journal: Journal, lock_fd: int) -> None:  # fmt: skip
        self.runtime_dir = runtime_dir
        self.loop, self.server, self.mgr, self.journal = loop, server, mgr, journal
        self.lock_fd = lock_fd
        self._sock = os.path.join(runtime_dir, "executor.sock")
        self._ino = os.stat(self._sock).st_ino
        loop.call_later(RUNTIME_CHECK_INTERVAL, self.check)

    def check(self) -> None:
        self.loop.call_later(RUNTIME_CHECK_INTERVAL, self.check)
        try:
            if os.stat(self._sock).st_ino == self._ino:
                return
        except FileNotFoundError:
            pass
        if not self.mgr.tasks and not os.path.isdir(self.runtime_dir):
            log.info("%s was removed and no task is known: exiting", self.runtime_dir)
            self.loop.stopping = True
            return
        try:
            os.makedirs(self.runtime_dir, mode=0o700, exist_ok=True)
            lock = take_lock(self.runtime_dir)
        except LockHeld as held:
            log.error("%s was remade and is served by executor %s", self.runtime_dir, held.pid)
            return
        except OSError as exc:
            log.error("cannot make %s again: %s", self.runtime_dir, exc)
            return
        try:
            listener = _listen(self.runtime_dir)
        except OSError as exc:
            os.close(lock)
            log.error("cannot listen on %s again: %s", self._sock, exc)
            return
        os.close(self.lock_fd)
        self.lock_fd = lock
        self.server.rebind(listener)
        self._ino = os.stat(self._sock).st_ino
        try:
            self.journal.compact(self.mgr.boot_id, {t: k.rec for t, k in self.mgr.tasks.items()})
        except OSError as exc:
            log.error("journal not written again in %s: %s", self.runtime_dir, exc)
        log.warning("%s was removed: made again (lock, socket, journal)", self.runtime_dir)


def _announce_ready(ready_fd: int | None) -> None:
    if ready_fd is None:
        return
    try:
        os.write(ready_fd, b"ready\n")
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
    os.close(ready_fd)


def _main_loop(loop: Loop, server: Server, mgr: TaskManager) -> None:
    def on_wake() -> None:
        loop.drain_wakeups()
        mgr.reap()

    loop.add_reader(loop.wake_r, on_wake)
    while not loop.stopping:
        wait = server.idle_deadline()
        if wait is not None and wait <= 0:
            log.info("idle for the configured time: exiting")
            return
        loop.run_once(0.0 if server.spawns_waiting() else wait)
        server.end_of_round()


def _shutdown(cfg: Config, loop: Loop, server: Server, mgr: TaskManager, journal: Journal) -> None:
    try:
        os.unlink(os.path.join(cfg.runtime_dir, "executor.sock"))
    except FileNotFoundError:
        pass
    server.close()
    checkrun.kill_checks(mgr)
    mgr.flush_exits()
    if mgr.remover is not None:
        mgr.remover.stop()
    if os.path.isdir(cfg.runtime_dir):  # gone: RuntimeWatch stops an executor with no tasks
        journal.compact(mgr.boot_id, {t: k.rec for t, k in mgr.tasks.items()})
    journal.close()
    if mgr.cg is not None:
        mgr.cg.close(remove_parents=not mgr.tasks)
    loop.close()
    log.info("executor stopped (%d tasks left in the journal)", len(mgr.tasks))
