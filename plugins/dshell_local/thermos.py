"""A Thermos-style process runner: the processes of one multi-process task, in its sandbox.

Run as ``python thermos.py SPEC.json`` (or ``python -m dshell_local.thermos SPEC.json``), or
with the spec inline: ``--spec JSON``; ``-`` reads it from stdin. The spec (see ``parse``)::

    {"processes": [{"name": "fetch", "cmdline": "curl -O …", "max_failures": 1,
                    "daemon": false, "ephemeral": false, "final": false, "min_duration": 5}],
     "order": [["fetch", "serve"]], "max_failures": 1, "max_concurrency": 0,
     "finalization_wait": 30}

Semantics (Aurora's Thermos: ``apache/thermos/core/runner.py`` and ``common/planner.py``):

* ``order(a, b)``: ``b`` starts once ``a`` has *succeeded*; ``max_concurrency`` bounds the
  processes running at once (0 = no bound).
* A process that fails is run again, at least ``min_duration`` seconds after its previous run
  ended, until it has failed ``max_failures`` times (0 = forever); a ``daemon`` is run again
  after a success too. An ``ephemeral`` process never decides the task's outcome.
* The task succeeds (exit 0) when every regular (not ``final``) non-ephemeral process has
  ended for good; it fails (exit 1) as soon as ``max_failures`` processes have failed for good
  (0 = never), or when what is left can never run (a failed process others depend on).
* Then the runner *cleans*: SIGTERM to what still runs, up to ``finalization_wait`` seconds,
  SIGKILL; then it *finalizes*: the ``final`` processes run (in their own order), within what
  is left of ``finalization_wait``. SIGTERM or SIGINT to the runner is a kill: the same two
  stages, from that moment, then the runner ends by that signal. SIGHUP, SIGUSR1 and SIGUSR2
  are passed on to the running processes.

Each process runs ``bash -c CMDLINE`` (``sh`` without bash) in its own process group, cwd and
environment the runner's (plus ``DSHELL_PROCESS`` and ``DSHELL_PROCESS_RUN``), stdin from
/dev/null, output appended to ``NAME/stdout`` and ``NAME/stderr``. When a process ends, what
is left of its process group is SIGKILLed before it is reaped. ``.dshell/processes.json`` is
replaced atomically on every change (``state_document``). The runner logs its decisions on
its own stderr.

Only the standard library is imported: the runner starts once per task launch.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time

TYPE_CHECKING = False  # typing costs ~4 ms to import: the runner starts once per launch
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

STATE_FILE = os.path.join(".dshell", "processes.json")
EXIT_SUCCESS, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Process states (Thermos' ProcessState without FORKED) and task states.
WAITING, RUNNING, SUCCESS, FAILED, KILLED, LOST = (
    "WAITING",
    "RUNNING",
    "SUCCESS",
    "FAILED",
    "KILLED",
    "LOST",
)
ACTIVE, CLEANING, FINALIZING = "ACTIVE", "CLEANING", "FINALIZING"
TERMINAL = (SUCCESS, FAILED, KILLED)
# When killed, the runner keeps this much of finalization_wait for itself (the engine
# SIGKILLs the task finalization_wait after its SIGTERM).
KILL_MARGIN = 1.0
SPAWN_RETRY = 1.0  # at least this long before trying again a process that could not start

_PENDING, _RUNNING, _DONE, _FAILED, _STOPPED = range(5)  # a process in its plan
_RESERVED = ("stdout", "stderr")  # the task's own output files
_PROCESS_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "cmdline": (str,),
    "max_failures": (int,),
    "daemon": (bool,),
    "ephemeral": (bool,),
    "final": (bool,),
    "min_duration": (int, float),
}
_TASK_FIELDS = ("processes", "order", "max_failures", "max_concurrency", "finalization_wait")
_WAITED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_WAITED |= {signal.SIGUSR1, signal.SIGUSR2}
_FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_CHILD_SIGDEF = tuple(_WAITED | {signal.SIGPIPE, signal.SIGXFSZ})
_OUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
_OUT_MODE = 0o600


class SpecError(ValueError):
    """A runner spec that cannot run; the message names the field."""


class Process:
    """One process of the task: its settings and what happened to it so far."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.name: str = data["name"]
        self.cmdline: str = data["cmdline"]
        self.max_failures: int = data.get("max_failures", 1)
        self.daemon: bool = data.get("daemon", False)
        self.ephemeral: bool = data.get("ephemeral", False)
        self.final: bool = data.get("final", False)
        self.min_duration: float = float(data.get("min_duration", 5.0))
        self.deps: set[str] = set()
        self.plan = _PENDING
        self.state = WAITING
        self.runs = self.failures = 0
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.ready_at = 0.0  # monotonic: not started again before (min_duration)
        self.stopping = False  # the runner signalled it: its end is KILLED
        self.message: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "final": self.final,
            "daemon": self.daemon,
            "ephemeral": self.ephemeral,
            "runs": self.runs,
            "failures": self.failures,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "message": self.message,
        }


class Config:
    """A parsed, validated spec."""

    def __init__(self, processes: list[Process], data: dict[str, Any]) -> None:
        self.processes = processes
        self.by_name = {p.name: p for p in processes}
        self.max_failures: int = data.get("max_failures", 1)
        self.max_concurrency: int = data.get("max_concurrency", 0)
        self.finalization_wait = float(data.get("finalization_wait", 30.0))


# ---- the spec -------------------------------------------------------------------------------


_KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


def _typed(data: dict[str, Any], key: str, where: str, kinds: tuple[type, ...]) -> None:
    """``data[key]``, when present, is of one of ``kinds`` (a bool is no number) and not < 0."""
    if key not in data:
        return
    value = data[key]
    is_bool = isinstance(value, bool)
    if not isinstance(value, kinds) or (is_bool and bool not in kinds):
        raise SpecError(f"{where}.{key}: expected {_KIND_NAMES[kinds[-1]]}, got {value!r}")
    if not is_bool and isinstance(value, int | float) and value < 0:
        raise SpecError(f"{where}.{key}: must be >= 0, got {value!r}")


def _process(data: Any, i: int) -> Process:
    where = f"processes[{i}]"
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected an object")
    unknown = sorted(set(data) - set(_PROCESS_FIELDS))
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r}")
    for key in ("name", "cmdline"):
        if key not in data:
            raise SpecError(f"{where}.{key}: required")
    for key, kinds in _PROCESS_FIELDS.items():
        _typed(data, key, where, kinds)
    name = data["name"]
    if not name or name.startswith(".") or "/" in name or "\0" in name or len(name) > 200:
        raise SpecError(f"{where}.name: {name!r} is not a file name (no '/', no leading '.')")
    if name in _RESERVED:
        raise SpecError(f"{where}.name: {name!r} is the task's own output file")
    return Process(data)


def _orders(cfg: Config, orders: Any) -> None:
    if not isinstance(orders, list):
        raise SpecError("order: expected a list of lists of process names")
    for i, chain in enumerate(orders):
        if not isinstance(chain, list) or not all(isinstance(n, str) for n in chain):
            raise SpecError(f"order[{i}]: expected a list of process names")
        unknown = [n for n in chain if n not in cfg.by_name]
        if unknown:
            raise SpecError(f"order[{i}]: no process {unknown[0]!r}")
        procs = [cfg.by_name[n] for n in chain]
        if len({p.final for p in procs}) > 1:
            raise SpecError(f"order[{i}]: mixes final and regular processes")
        for before, after in itertools.pairwise(procs):
            if before.daemon:
                raise SpecError(f"order[{i}]: {after.name} may not wait for daemon {before.name}")
            if before.ephemeral and not after.ephemeral:
                raise SpecError(
                    f"order[{i}]: {after.name} may not wait for ephemeral {before.name}"
                )
            if before is after:
                raise SpecError(f"order[{i}]: {after.name} waits for itself")
            after.deps.add(before.name)
    left = {p.name: set(p.deps) for p in cfg.processes}
    while left:  # Kahn: whatever never becomes free sits on a cycle
        free = [n for n, deps in left.items() if not deps]
        if not free:
            raise SpecError(f"order: a cycle among {', '.join(sorted(left))}")
        for name in free:
            del left[name]
        for deps in left.values():
            deps.difference_update(free)


def parse(data: Any) -> Config:
    """The runner's view of a spec; SpecError names what is wrong."""
    if not isinstance(data, dict):
        raise SpecError("the spec must be a JSON object")
    unknown = sorted(set(data) - set(_TASK_FIELDS))
    if unknown:
        raise SpecError(f"unknown field {unknown[0]!r}")
    raw = data.get("processes")
    if not isinstance(raw, list) or not raw:
        raise SpecError("processes: a non-empty list is required")
    for key in ("max_failures", "max_concurrency"):
        _typed(data, key, "task", (int,))
    _typed(data, "finalization_wait", "task", (int, float))
    procs = [_process(p, i) for i, p in enumerate(raw)]
    seen: set[str] = set()
    for p in procs:
        if p.name in seen:
            raise SpecError(f"processes: two processes named {p.name!r}")
        seen.add(p.name)
    cfg = Config(procs, data)
    _orders(cfg, data.get("order", []))
    return cfg


def problem(data: Any) -> str | None:
    """What is wrong with a spec, or None (for callers that validate before launching)."""
    try:
        parse(data)
    except SpecError as exc:
        return str(exc)
    return None


def spec_data(
    processes: Iterable[Any],
    order: Sequence[Sequence[str]] = (),
    *,
    max_failures: int = 1,
    max_concurrency: int = 0,
    finalization_wait: float = 30.0,
) -> dict[str, Any]:
    """The JSON spec of ``processes`` (objects with the attributes of ``ProcessSpec``)."""
    return {
        "processes": [
            {
                "name": p.name,
                "cmdline": p.cmdline,
                "max_failures": p.max_failures,
                "daemon": p.daemon,
                "ephemeral": p.ephemeral,
                "final": p.final,
                "min_duration": p.min_duration,
            }
            for p in processes
        ],
        "order": [list(chain) for chain in order],
        "max_failures": max_failures,
        "max_concurrency": max_concurrency,
        "finalization_wait": finalization_wait,
    }


def needs_runner(processes: Sequence[Any]) -> bool:
    """Whether ``processes`` (``ProcessSpec``-like) need the runner: several processes, or one
    with Thermos behaviour a plain command lacks (retries, daemon, ephemeral, final). A single
    plain process runs as the task's own command, its output in the task's stdout/stderr."""
    if len(processes) != 1:
        return len(processes) > 1
    p = processes[0]
    return p.max_failures != 1 or p.daemon or p.ephemeral or p.final


def command(data: dict[str, Any], python: str = sys.executable) -> list[str]:
    """The argv that runs ``data``: this file by path, isolated and without ``site`` (only the
    stdlib is needed, and site's .pth files cost more than the runner), the spec inline."""
    spec = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return [python, "-I", "-S", os.path.abspath(__file__), "--spec", spec]


def render(text: str, env: dict[str, str]) -> str:
    """Templates the engine left (it renders them before launch): ports, task id, host."""
    if "{{" not in text:
        return text
    import re

    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key.startswith("thermos.ports["):
            name = key[len("thermos.ports[") : -1].strip()
            return env.get("PORT_" + name.upper().replace("-", "_"), m.group(0))
        var = {"thermos.task_id": "DSHELL_TASK_ID", "mesos.hostname": "HOST"}.get(key, "")
        return env.get(var, m.group(0))

    return re.sub(r"\{\{\s*([^{}]+?)\s*\}\}", value, text)


# ---- the runner -----------------------------------------------------------------------------


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def _log(text: str) -> None:
    try:
        os.write(2, f"{_iso(time.time())} thermos: {text}\n".encode(errors="replace"))
    except OSError:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Runner:
    """Runs a Config through ACTIVE, CLEANING and FINALIZING to SUCCESS, FAILED or KILLED."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stage = ACTIVE
        self.outcome: str | None = None  # decided when cleaning starts
        self.deadline: float | None = None  # monotonic end of cleaning + finalizing
        self.forced = False  # SIGKILLs sent at the deadline
        self.kill_signal: int | None = None
        self.by_pid: dict[int, Process] = {}
        self.started_at = _iso(time.time())
        self.finished_at: str | None = None
        self.shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
        self._written = ""

    # -- the loop --

    def run(self) -> int:
        """Run to a terminal state; the exit status (SIGTERM/SIGINT: see ``main``)."""
        env = dict(os.environ)
        try:
            for p in self.cfg.processes:
                os.makedirs(p.name, exist_ok=True)
                p.cmdline = render(p.cmdline, env)
            os.makedirs(".dshell", exist_ok=True)
        except OSError as exc:
            _log(f"cannot prepare the sandbox: {exc}")
            return EXIT_FAILED
        while True:
            self._reap()
            self._step()
            if self.stage in TERMINAL:
                break
            self._save()
            sig = self._wait(self._timeout())
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.kill(sig)
            elif sig in _FORWARDED:
                for p in self._running():
                    if p.pid is not None:
                        _signal_group(p.pid, sig)
        self.finished_at = _iso(time.time())
        self._save()
        _log(f"task {self.stage}")
        return EXIT_SUCCESS if self.stage == SUCCESS else EXIT_FAILED

    def _wait(self, timeout: float | None) -> int | None:
        if timeout is None:
            return signal.sigwaitinfo(_WAITED).si_signo
        info = signal.sigtimedwait(_WAITED, max(0.0, timeout))
        return None if info is None else info.si_signo

    def _timeout(self) -> float | None:
        now = time.monotonic()
        cands = []
        if self.deadline is not None and not self.forced:
            cands.append(self.deadline - now)
        elif self.forced:
            cands.append(1.0)  # SIGKILLed processes are reaped on SIGCHLD; look again anyway
        if self.stage in (ACTIVE, FINALIZING):
            plan, limit = self._plan(), self.cfg.max_concurrency
            if not limit or sum(1 for p in plan if p.plan == _RUNNING) < limit:
                cands += [max(0.0, p.ready_at - now) for p in self._eligible(plan)]
        return min(cands) if cands else None

    def _step(self) -> None:
        now = time.monotonic()
        if self.stage == ACTIVE:
            verdict = self._verdict()
            if verdict is None:
                self._launch(self._plan(), now)
                verdict = self._verdict()
            if verdict is not None:
                self._clean(verdict, now + self.cfg.finalization_wait)
        if self.stage == CLEANING:
            if self._running():
                self._force_at_deadline(now)
            elif self.forced or self.deadline is None or now >= self.deadline:
                if any(p.final for p in self.cfg.processes):
                    _log("finalization wait exceeded: final processes skipped")
                self._finish()
            else:
                self.stage = FINALIZING
                _log("finalizing")
        if self.stage == FINALIZING:
            plan = self._plan()
            if not self.forced and self.deadline is not None and now < self.deadline:
                self._launch(plan, now)
            else:
                self._force_at_deadline(now)
            if not self._running() and (self.forced or not self._eligible(plan)):
                self._finish()

    def _finish(self) -> None:
        self.stage = self.outcome or FAILED

    # -- plans --

    def _plan(self) -> list[Process]:
        final = self.stage == FINALIZING
        return [p for p in self.cfg.processes if p.final is final]

    def _running(self) -> list[Process]:
        return [p for p in self.cfg.processes if p.plan == _RUNNING]

    def _eligible(self, plan: list[Process]) -> list[Process]:
        """Processes of ``plan`` that may start once their ``min_duration`` wait is over."""
        by_name = self.cfg.by_name
        return [
            p for p in plan if p.plan == _PENDING and all(by_name[d].plan == _DONE for d in p.deps)
        ]

    def _verdict(self) -> str | None:
        """SUCCESS or FAILED once the regular processes decide it; None while they run."""
        regular = [p for p in self.cfg.processes if not p.final and not p.ephemeral]
        failed = sum(1 for p in regular if p.plan == _FAILED)
        limit = self.cfg.max_failures
        if limit and failed >= limit:
            _log(f"{failed} process(es) failed (the task's max_failures is {limit})")
            return FAILED
        if all(p.plan in (_DONE, _FAILED) for p in regular):
            return SUCCESS
        if not any(p.plan == _RUNNING for p in regular) and not self._eligible(regular):
            _log("no process left that can run: a process others wait for has failed")
            return FAILED
        return None

    def _launch(self, plan: list[Process], now: float) -> None:
        running = sum(1 for p in plan if p.plan == _RUNNING)
        limit = self.cfg.max_concurrency
        for p in self._eligible(plan):
            if limit and running >= limit:
                return
            if p.ready_at <= now:
                self._spawn(p)
                running += p.plan == _RUNNING

    # -- processes --

    def _spawn(self, p: Process) -> None:
        p.runs += 1
        env = dict(os.environ)
        env.update({"DSHELL_PROCESS": p.name, "DSHELL_PROCESS_RUN": str(p.runs)})
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.path.join(p.name, "stdout"), _OUT_FLAGS, _OUT_MODE),
            (os.POSIX_SPAWN_OPEN, 2, os.path.join(p.name, "stderr"), _OUT_FLAGS, _OUT_MODE),
        ]
        p.started_at, p.finished_at = _iso(time.time()), None
        p.exit_code = p.signal = p.message = None
        try:
            pid = os.posix_spawn(
                self.shell,
                [self.shell, "-c", p.cmdline],
                env,
                file_actions=actions,
                setpgroup=0,
                setsigmask=(),
                setsigdef=_CHILD_SIGDEF,
            )
        except OSError as exc:
            p.message = f"cannot start: {exc.strerror or exc}"
            _log(f"{p.name}: {p.message}")
            self._ended(p, None)
            p.ready_at = max(p.ready_at, time.monotonic() + SPAWN_RETRY)  # never a busy loop
            return
        p.pid, p.plan, p.state = pid, _RUNNING, RUNNING
        self.by_pid[pid] = p
        _log(f"{p.name}: started (pid {pid}, run {p.runs})")

    def _reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            # Still a zombie: its pid (its group's id) cannot be reused yet.
            _signal_group(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            p = self.by_pid.pop(pid, None)
            if p is not None:
                self._ended(p, status)

    def _ended(self, p: Process, status: int | None) -> None:
        p.pid = None
        p.finished_at = _iso(time.time())
        p.ready_at = time.monotonic() + p.min_duration
        code = None if status is None else os.waitstatus_to_exitcode(status)
        if code is not None and code < 0:
            p.signal = -code
        else:
            p.exit_code = code
        how = f"exit {code}" if code is None or code >= 0 else f"signal {-code}"
        if p.stopping:
            p.plan, p.state = _STOPPED, KILLED
        elif code == 0:
            if p.daemon and self.stage in (ACTIVE, FINALIZING):
                p.plan, p.state = _PENDING, WAITING
            else:
                p.plan, p.state = _DONE, SUCCESS
        else:
            p.failures += 1
            if p.max_failures == 0 or p.failures < p.max_failures:
                p.plan, p.state = _PENDING, WAITING
            else:
                p.plan, p.state = (_DONE if p.ephemeral else _FAILED), FAILED
        again = " (runs again)" if p.plan == _PENDING else ""
        _log(f"{p.name}: {how}, {p.state}{again}")

    def _clean(self, outcome: str, deadline: float) -> None:
        self.stage, self.outcome, self.deadline = CLEANING, outcome, deadline
        _log(f"regular processes over ({outcome}): cleaning")
        self._stop(signal.SIGTERM)

    def _stop(self, sig: int) -> None:
        for p in self._running():
            p.stopping = True
            if p.pid is not None:
                _signal_group(p.pid, sig)

    def _force_at_deadline(self, now: float) -> None:
        if not self.forced and self.deadline is not None and now >= self.deadline:
            self.forced = True
            if self._running():
                _log("finalization wait exceeded: SIGKILL")
            self._stop(signal.SIGKILL)

    def kill(self, sig: int) -> None:
        """SIGTERM/SIGINT: clean up and finalize from now (once), then end as KILLED."""
        if self.kill_signal is not None:
            return
        self.kill_signal = sig
        _log(f"killed by signal {sig}")
        deadline = time.monotonic() + max(0.0, self.cfg.finalization_wait - KILL_MARGIN)
        if self.stage == ACTIVE:
            self._clean(KILLED, deadline)
        else:
            self.outcome = KILLED
            self.deadline = min(self.deadline or deadline, deadline)

    # -- the state file --

    def document(self) -> dict[str, Any]:
        """What ``.dshell/processes.json`` holds."""
        return {
            "version": 1,
            "state": self.stage,
            "runner_pid": os.getpid(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "max_failures": self.cfg.max_failures,
            "max_concurrency": self.cfg.max_concurrency,
            "finalization_wait": self.cfg.finalization_wait,
            "processes": [p.view() for p in self.cfg.processes],
        }

    def _save(self) -> None:
        text = json.dumps(self.document(), indent=1)
        if text == self._written:
            return
        tmp = STATE_FILE + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            os.replace(tmp, STATE_FILE)
        except OSError as exc:
            _log(f"cannot write {STATE_FILE}: {exc}")
            return
        self._written = text


def _read_spec(argv: list[str]) -> Any:
    if len(argv) == 2 and argv[0] == "--spec":
        return json.loads(argv[1])
    if len(argv) == 1 and argv[0] == "-":
        return json.load(sys.stdin)
    if len(argv) == 1 and not argv[0].startswith("-"):
        with open(argv[0], encoding="utf-8") as f:
            return json.load(f)
    raise SpecError("usage: thermos (SPEC.json | --spec JSON | -)")


def main(argv: list[str]) -> int:
    """Entry point; the exit status (0 success, 1 failure, 2 bad spec); killed, it ends by
    the signal it was killed with."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    try:
        cfg = parse(_read_spec(argv))
    except (OSError, ValueError) as exc:  # SpecError, JSONDecodeError, unreadable file
        _log(f"bad spec: {exc}")
        return EXIT_USAGE
    runner = Runner(cfg)
    status = runner.run()
    if runner.stage == KILLED and runner.kill_signal is not None:
        sig = runner.kill_signal
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
        return 128 + sig
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
