"""The listing's ``squeue``, defined once and startable before dshell has finished starting.

The listing squeue is what ``dshell ps`` on a Slurm mount waits for besides dshell's own
start-up (imports, mount table, backend); it prints only the columns a task needs
(:data:`LISTING_COLUMNS`), not ``--json``'s whole job records.
``prefetch_listing`` (the package's early-listing hook, see "Early listings" in
:mod:`dshell.backend`) starts the command as soon as the fast path knows the mount, and the
backend's :class:`~dshell_slurm.runner.LocalRunner` collects it instead of starting another.

The command, its environment and how it is spawned are defined here only, for both the early
start and the backend's own calls (:mod:`dshell_slurm.client`, :mod:`dshell_slurm.runner`), and
the runner uses an early process only if its argv and environment are exactly the ones it
would run. This module imports nothing heavy at import time (it runs before msgspec does).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~10 ms to import, and this module runs first
if TYPE_CHECKING:
    import subprocess


def is_local(source: str) -> bool:
    """Whether a mount source means this machine's client commands (else ``ssh://…``)."""
    return source in ("", "localhost", "local")


def client_env(options: dict[str, str]) -> dict[str, str]:
    """The environment a mount adds to Slurm's client commands (``slurm_conf``)."""
    return {"SLURM_CONF": options["slurm_conf"]} if options.get("slurm_conf") else {}


def local_env(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a local client command: ours, plus the mount's."""
    return {**os.environ, **extra}


def squeue_argv(options: dict[str, str], job_ids: list[str] | None = None) -> list[str]:
    """``squeue --json`` for a mount's jobs (``job_ids``: only those)."""
    return ["squeue", "--json", *_filters(options, job_ids)]


def _filters(options: dict[str, str], job_ids: list[str] | None) -> list[str]:
    argv = []
    if options.get("user"):
        argv.append(f"--user={options['user']}")
    if job_ids:
        argv.append("--jobs=" + ",".join(job_ids))
    return argv


#: The listing's columns: each ``squeue --Format`` field and the ``--json`` key it fills
#: (:mod:`dshell_slurm.columns` reads them back). ``squeue --json`` prints ~6 KB per job, and
#: making and parsing that is most of a listing's time (~85 ms of squeue's CPU for 500 jobs,
#: against ~10 ms for these columns). Free text (name, comment) is kept off the line's ends.
LISTING_COLUMNS = (
    ("JobID", "job_id"),
    ("ArrayJobID", "array_job_id"),
    ("ArrayTaskID", "array_task_id"),
    ("State", "job_state"),
    ("Reason", "state_reason"),
    ("exit_code", "exit_code"),
    ("SubmitTime", "submit_time"),
    ("StartTime", "start_time"),
    ("EndTime", "end_time"),
    ("Name", "name"),
    ("BatchHost", "batch_host"),
    ("NodeList", "nodes"),
    ("NumCPUs", "cpus"),
    ("tres-alloc", "tres_alloc_str"),
    ("Comment", "comment"),
    ("Command", "command"),
    ("Account", "account"),
    ("Partition", "partition"),
    ("UserName", "user_name"),
    ("WorkDir", "current_working_directory"),
)
#: Ends every field: a control character no Slurm value is expected to hold (one that does
#: changes a line's field count, and the listing then asks ``--json`` instead).
SEP = "\x1f"
#: The listing's extra environment: times as epoch seconds, whatever the host's time zone.
LISTING_ENV = {"SLURM_TIME_FORMAT": "%s"}


def listing_argv(options: dict[str, str], job_ids: list[str] | None = None) -> list[str]:
    """``squeue`` printing :data:`LISTING_COLUMNS` for a mount's jobs, in every state (as
    ``--json`` lists them) and one line per array element (``--array``)."""
    fmt = ",".join(f"{field}:0{SEP}" for field, _key in LISTING_COLUMNS)
    return ["squeue", "--noheader", "--array", "--states=all", f"--Format={fmt}",
            *_filters(options, job_ids)]  # fmt: skip


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a local client command with every stream piped (OSError if it cannot start)."""
    import subprocess

    pipe = subprocess.PIPE
    return subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=pipe, env=env)


def _which(name: str, env: dict[str, str]) -> str | None:
    """``name`` found on ``env``'s PATH, as :class:`subprocess.Popen` looks it up."""
    if "/" in name:
        return name
    for entry in env.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(entry or os.curdir, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def _default_signals() -> tuple[int, ...]:
    """The signals Python ignores and :class:`subprocess.Popen` restores in its children."""
    import _signal  # the C module, loaded with the interpreter; ``signal`` imports enum

    return tuple(
        getattr(_signal, n) for n in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(_signal, n)
    )


class Started:
    """A client command started early, without :mod:`subprocess` (~10 ms to import, before the
    command could start): ``posix_spawn`` with stdin from /dev/null, stdout and stderr piped,
    and the signals Popen restores set back to their defaults. Collected by
    :meth:`communicate` (the backend's runner) or ended by :meth:`close`."""

    def __init__(self, argv: list[str], env: dict[str, str], pid: int, out: int, err: int):
        self.argv = argv
        self.env = env
        self.pid = pid
        self.returncode: int | None = None
        self._fds = [out, err]

    @classmethod
    def spawn(cls, argv: list[str], env: dict[str, str]) -> Started | None:
        """Start ``argv``; None if it cannot start (the caller then runs it the usual way, which
        reports why)."""
        exe = _which(argv[0], env)
        if exe is None:
            return None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if min(out_r, out_w, err_r, err_w) <= 2:  # a standard stream was closed: not here
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            return None
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        try:
            pid = os.posix_spawn(exe, argv, env, file_actions=actions, setsigdef=_default_signals())
        except OSError:
            os.close(out_r)
            os.close(err_r)
            return None
        finally:
            os.close(out_w)
            os.close(err_w)
        return cls(argv, env, pid, out_r, err_r)

    def communicate(self, timeout: float) -> tuple[int, bytes, bytes]:
        """(status, stdout, stderr) once both outputs end and the process is reaped, as
        :meth:`subprocess.Popen.communicate` gives them (a signal is a negative status). Past
        ``timeout`` seconds it is killed and :class:`subprocess.TimeoutExpired` raised."""
        import select
        import subprocess
        import time

        deadline = time.monotonic() + timeout
        chunks: dict[int, list[bytes]] = {fd: [] for fd in self._fds}
        try:
            poller = select.poll()
            for fd in self._fds:
                poller.register(fd, select.POLLIN)
            reading = set(self._fds)
            while reading:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(self.argv, timeout)
                for fd, _event in poller.poll(left * 1000):
                    data = os.read(fd, 1 << 16)
                    if data:
                        chunks[fd].append(data)
                    else:
                        poller.unregister(fd)
                        reading.discard(fd)
            delay = 0.0005
            while not self._reaped(os.WNOHANG):
                if time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(self.argv, timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        except BaseException:
            self.close()
            raise
        self._close_fds()
        out, err = (b"".join(chunks[fd]) for fd in chunks)
        assert self.returncode is not None
        return self.returncode, out, err

    def _reaped(self, flags: int = 0) -> bool:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid == 0:
                return False
            self.returncode = os.waitstatus_to_exitcode(status)
        return True

    def _close_fds(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def close(self) -> None:
        """Kill it if it still runs (a read-only query: nothing is lost), reap it, close its
        pipes."""
        self._close_fds()
        if self.returncode is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self._reaped()


def columns_listing(options: dict[str, str]) -> bool:
    """Whether a mount lists from the columns (``-o listing=columns``, the default) rather
    than from ``squeue --json`` (``-o listing=json``)."""
    return options.get("listing", "columns") != "json"


def prefetch_listing(source: str, options: dict[str, str]) -> Started | None:
    """Start a local mount's listing squeue now; None for ssh:// mounts (connecting is the
    expensive part there, and the backend does it) or when it cannot start (the listing then
    runs it again and reports why, as it always has)."""
    if not is_local(source):
        return None
    if not columns_listing(options):
        return Started.spawn(squeue_argv(options), local_env(client_env(options)))
    argv = listing_argv(options)
    return Started.spawn(argv, local_env({**client_env(options), **LISTING_ENV}))
