"""Per-task cgroups: create with limits, place a child before it execs, read counters, remove.

How a child gets into its cgroups before exec: one thread of the executor moves *itself* into
the task's cgroups (v1: "0", itself, into each ``tasks`` file, and that thread is the placing
thread of :mod:`.placer`, so the main thread, the memory owner, stays home; v2:
``cgroup.procs``, the whole process), calls ``posix_spawn`` (the child inherits the forking
thread's cgroups), and moves back. A pipelined burst of spawns hops from task to task and goes
home once, so a task costs one ``tasks`` write per hierarchy (two for cpu). Three
consequences, each handled:

- ``pids.max``: the executor's thread counts while inside, so the task can have N-1 processes
  until it leaves, and never more than N. Only for N = 1 (where the spawn itself would fail;
  on v2, where all the executor's threads move, always) is the group created with more room and
  lowered to N right after the spawn, before leaving (lowering below the current count is
  allowed and blocks further forks).
- ``cpu``: right after the spawn the executor's thread goes home in the cpu hierarchy (v1), and
  only then is the quota written, so a tiny quota never throttles the executor. (Staying inside
  until the next task's enter, as the other hierarchies do, let the executor's work for the
  next task count against this task's quota together with its exec: with 0.001 cpus — a 1 ms
  quota per 100 ms — the executor was throttled for the rest of the period, and a burst of
  1,000 such tasks ran 27 % slower than with 1 cpu each; measured.)
- ``memory``: the limit must hold from the first page, so it is written before. On v1 the
  thread inside is not the thread-group leader: the executor's pages stay charged at home and
  the memcg OOM killer, which walks leaders, cannot pick the executor. On v2 the whole process
  moves, so there the executor runs with ``oom_score_adj = -1000`` (the spawner restores the
  child's own value), or where that is not permitted (no CAP_SYS_RESOURCE) leaves the memory
  cgroup first, right after ``posix_spawn`` returns (and limits below 4 MB, where exec itself
  would OOM, are refused).

No reuse: every task group is made with mkdir and removed with rmdir. Until 2026-11-26 (v1)
up to 64 removed groups per hierarchy were reset and renamed to ``spare-N`` for the next
tasks, to save the mkdir (~50 µs against ~19 µs for a rename) and to avoid "dying" memory
cgroups (removed groups the kernel keeps while they are charged with page cache). Since tasks
are placed from a thread that is not the memory owner (:mod:`.placer`), removed groups no
longer die slowly (2,000 launches left none), and the reset's ``memory.force_empty`` (1-2.5 ms)
ran in the middle of bursts: without the pool a burst of 1,000 launches measured 0.53 of raw
against 0.48 (A/B x4, medians). ``spare-*`` groups an older executor left are removed at start.

Ownership: each parent holds an empty ``owner-<pid>-<start time>`` group naming the executor that
uses it. An executor that dies without cleaning up (SIGKILL, a crash) leaves its parent and
task groups behind, and one whose engine never starts again (a removed state dir, a test's
temporary engine) never comes back for them, and every cpu quota write walks all the groups of
the hierarchy (hundreds of leaked parents made it twice as slow, measured). So a starting
executor removes sibling ``dshell-*`` parents whose owner is gone and in which no process is
left; parents of live executors, parents still holding processes, and unmarked parents younger
than a minute (an executor of an older version, or one being set up) are left alone.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time

from . import procfs
from .cgdiscover import Discovery, Hierarchy
from .protocol import Isolation, Limits

log = logging.getLogger("dshell.executor")

_CFS_PERIOD_US = 100_000
_MIN_QUOTA_US = 1_000  # the kernel's minimum cfs quota
SPARE = "spare-"  # spare-N: a reuse pool's group, left by executors before 2026-11-26
OWNER = "owner-"  # owner-<pid>-<start time>: the executor using a parent (see the docstring)
PARENT_PREFIX = "dshell-"  # the engine's --cgroup-name is dshell-<hash of its runtime dir>
UNMARKED_GRACE = 60.0  # seconds before an unmarked parent counts as abandoned


class TaskCgroup:
    """The cgroup directories of one task: controller name → directory."""

    __slots__ = ("paths",)

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    def dirs(self) -> list[str]:
        """Distinct directories (co-mounted controllers share one)."""
        return list(dict.fromkeys(self.paths.values()))


class Cgroups:
    """Cgroup operations for one executor (v1 or v2), with the home and parent dirs cached."""

    def __init__(self, found: Discovery) -> None:
        self.kind = found.kind
        self.v2 = found.kind == "cgroup-v2"
        self.detail = found.detail
        self._hier: list[Hierarchy] = found.hierarchies
        self.controllers = sorted(c for h in self._hier for c in h.controllers)
        self._tid = str(os.getpid()).encode()  # the process's (v2), or its main thread's (v1)
        self._placing: set[int] = set()  # the placing threads (v1): each moves itself ("0")
        self._local = threading.local()  # per thread: whether it sits in a task's groups
        enter_file = "cgroup.procs" if self.v2 else "tasks"
        self._enter_file = enter_file
        self._home_fds = [
            os.open(os.path.join(h.home, enter_file), os.O_WRONLY) for h in self._hier
        ]
        self.early_memory_leave = False  # set when the executor could not get oom_score_adj -1000
        self._mem_home = self._home_fd("memory")
        self._cpu_home = self._home_fd("cpu")
        mem = self._dir_of("memory")
        self._memsw = mem is not None and os.path.exists(mem + "/memory.memsw.limit_in_bytes")
        self._swap = SwapCheck()
        for h in self._hier:  # an older executor's reuse pool (see the docstring)
            for name in _children(h.parent, SPARE):
                _rmdir(os.path.join(h.parent, name))

    def use_thread(self, tid: int) -> None:
        """Place tasks by moving thread ``tid`` (v1; see :mod:`.placer`; called once per placing
        thread); v2 moves the whole process whatever thread writes, so there the pid stays."""
        if not self.v2:
            self._placing.add(tid)

    def _mover(self) -> bytes:
        """What the writing thread puts in the enter file: "0" (itself) when it is a placing
        thread (v1), else the process id (v2: the whole process moves; v1 without placing
        threads: the main thread).

        "0" is not a spelling: the kernel moves the writer itself without taking the global
        ``cgroup_threadgroup_rwsem`` for writing (``cgroup_procs_write_start`` takes it for a
        pid or a whole process, and after an idle moment that write lock waits a whole RCU
        grace period — 5 waits of up to 24 ms per burst of 1,000 tasks, measured with
        ``perf`` — and meanwhile blocks every fork)."""
        if threading.get_native_id() in self._placing:
            return b"0"
        return self._tid

    def _home_fd(self, ctl: str) -> int | None:
        """The cached fd of the executor's own group in the hierarchy of ``ctl``."""
        pairs = zip(self._hier, self._home_fds, strict=True)
        return next((fd for h, fd in pairs if ctl in h.controllers), None)

    def _dir_of(self, ctl: str) -> str | None:
        for h in self._hier:
            if ctl in h.controllers:
                return h.parent
        return None

    def isolation(self) -> Isolation:
        """What ``hello`` reports."""
        return Isolation(kind=self.kind, controllers=self.controllers, detail=self.detail)

    def parents(self) -> list[str]:
        """The ``--cgroup-name`` directory of each hierarchy."""
        return [h.parent for h in self._hier]

    def task_cgroup(self, task_id: str, limits: Limits | None = None) -> TaskCgroup:
        """The (deterministic) cgroup directories of a task, created or not.

        With ``limits``, only the hierarchies the task needs: memory and cpuacct always (OOM
        counter, process list, accounting), cpu only for a cpus limit, pids only for a pids
        limit. Each hierarchy costs a mkdir, a move and an rmdir per task (~150 µs).
        """
        name = "task-" + task_id
        paths = {}
        for h in self._hier:
            if limits is not None and not self.v2 and not _needed(h.controllers, limits):
                continue
            path = os.path.join(h.parent, name)
            for ctl in h.controllers:
                paths[ctl] = path
        return TaskCgroup(paths)

    # ------------------------------------------------------------ creation and placement

    def create(self, tc: TaskCgroup, limits: Limits) -> None:
        """mkdir the task's cgroups and write the limits that must hold before exec."""
        made = []
        try:
            for d in tc.dirs():
                os.mkdir(d)
                made.append(d)
            if limits.mem_mb is not None:
                self._set_memory(tc, int(limits.mem_mb * 1024 * 1024))
            if limits.pids is not None and "pids" in tc.paths:
                room = self._pids_while_spawning(int(limits.pids))
                _write(tc.paths["pids"] + "/pids.max", b"%d" % room)
        except OSError:
            for d in reversed(made):
                _rmdir(d)
            raise

    def _pids_while_spawning(self, pids: int) -> int:
        """pids.max to use until the executor has left: v1 moves one thread (it costs the task
        one pid for that moment, so only N = 1 needs room); v2 moves every thread."""
        if self.v2:
            return pids + threading.active_count()
        return max(2, pids)

    def _set_memory(self, tc: TaskCgroup, nbytes: int) -> None:
        """The memory limit, and no swap beyond it (Mesos limits swap only when asked; here
        always). Without any swap device the swap limit has nothing to limit and is not
        written: an open, a write and a close (~55 µs) of every launch."""
        mem = tc.paths["memory"]
        if self.v2:
            _write(mem + "/memory.max", b"%d" % nbytes)
            if self._swap.on():
                _write(mem + "/memory.swap.max", b"0")
            return
        _write(mem + "/memory.limit_in_bytes", b"%d" % nbytes)
        if self._memsw and self._swap.on():  # memsw >= limit is required: it goes second
            _write(mem + "/memory.memsw.limit_in_bytes", b"%d" % nbytes)

    def enter(self, tc: TaskCgroup) -> None:
        """Move the calling (placing) thread into the task's cgroups (see the module docstring)."""
        self._local.inside = True  # set first: a failure half-way must still lead back home
        who = self._mover()
        for d in tc.dirs():
            _write(d + "/" + self._enter_file, who)

    def settle(self, tc: TaskCgroup, limits: Limits) -> None:
        """After the spawn: final pids.max (still inside), then the cpu quota (from outside)."""
        who = self._mover()
        if self.early_memory_leave and self._mem_home is not None and not self.v2:
            os.write(self._mem_home, who)
        pids = None if limits.pids is None else int(limits.pids)
        if pids is not None and "pids" in tc.paths and self._pids_while_spawning(pids) != pids:
            _write(tc.paths["pids"] + "/pids.max", b"%d" % pids)
        if limits.cpus is not None and "cpu" in tc.paths:
            quota = max(_MIN_QUOTA_US, int(limits.cpus * _CFS_PERIOD_US))
            if not self.v2 and self._cpu_home is not None:
                os.write(self._cpu_home, who)  # out of reach of the quota first
            if self.v2:
                _write(tc.paths["cpu"] + "/cpu.max", b"%d %d" % (quota, _CFS_PERIOD_US))
            else:
                _write(tc.paths["cpu"] + "/cpu.cfs_quota_us", b"%d" % quota)

    def leave(self) -> None:
        """Move the calling thread back to the executor's own cgroups (one write per hierarchy,
        fds kept open); nothing if it is not in a task's."""
        if not getattr(self._local, "inside", False):
            return
        who = self._mover()
        for fd in self._home_fds:
            os.write(fd, who)
        self._local.inside = False

    def join(self, tc: TaskCgroup, pid: int) -> list[str]:
        """Move a whole process (all its threads) into the task's cgroups."""
        data = str(pid).encode()
        for d in tc.dirs():
            _write(d + "/cgroup.procs", data)
        return sorted(tc.paths)

    # ------------------------------------------------------------ reading

    def procs(self, tc: TaskCgroup, first_only: bool = False) -> set[int]:
        """Every pid in any of the task's cgroups (zombies are not listed). ``first_only``
        reads the memory group only, which holds every process of the task but those that
        moved themselves out of it."""
        pids: set[int] = set()
        mem = tc.paths.get("memory")
        for d in [mem] if first_only and mem else tc.dirs():
            for sub in _tree(d):  # a nested engine's task groups live below the task's
                try:
                    pids.update(int(x) for x in _read(sub + "/cgroup.procs").split())
                except FileNotFoundError:
                    continue
        return pids

    def oom_kills(self, tc: TaskCgroup) -> int:
        """The kernel's OOM-kill counter of the task's memory cgroup (0 if unreadable)."""
        mem = tc.paths.get("memory")
        if mem is None:
            return 0
        name = "/memory.events" if self.v2 else "/memory.oom_control"
        return _read_key(mem + name, b"oom_kill") or 0

    def usage(self, tc: TaskCgroup) -> tuple[int | None, int | None, int]:
        """(cpu ns, rss bytes, process count); None where the controller is absent."""
        cpu: int | None = None
        rss: int | None = None
        if self.v2:
            usec = _read_key(tc.paths["memory"] + "/cpu.stat", b"usage_usec")
            cpu = None if usec is None else usec * 1000
            rss = _read_key(tc.paths["memory"] + "/memory.stat", b"anon")
        else:
            if "cpuacct" in tc.paths:
                cpu = _read_int(tc.paths["cpuacct"] + "/cpuacct.usage")
            rss = _read_key(tc.paths["memory"] + "/memory.stat", b"total_rss")
        where = tc.paths.get("pids") or tc.paths["memory"]
        try:
            nprocs = len(_read(where + "/cgroup.procs").split())
        except FileNotFoundError:
            nprocs = 0
        return cpu, rss, nprocs

    # ------------------------------------------------------------ removal

    def remove(self, tc: TaskCgroup) -> bool:
        """rmdir the task's cgroups; False if some are still busy (processes left)."""
        done = True
        for d in tc.dirs():
            if _rmdir(d):  # the usual empty group without subgroups: one system call
                continue
            nested = _tree(d)[1:]  # groups a nested engine made inside the task's: deepest first
            for sub in reversed(nested):
                done = _rmdir(sub) and done
            done = _rmdir(d) and done
        return done

    def stray_task_dirs(self, known: set[str]) -> list[TaskCgroup]:
        """Task cgroups under our parents that belong to no known task (left by a crash)."""
        names: set[str] = set()
        for h in self._hier:
            try:
                names.update(e.name for e in os.scandir(h.parent) if e.is_dir())
            except FileNotFoundError:
                continue
        return [
            self.task_cgroup(n[len("task-") :])
            for n in sorted(names)
            if n.startswith("task-") and n[len("task-") :] not in known
        ]

    # ------------------------------------------------------------ ownership

    def claim(self) -> None:
        """Mark our parents as ours (replacing a dead predecessor's mark)."""
        me = procfs.read_stat(os.getpid())
        mark = f"{OWNER}{os.getpid()}-{me.start_time if me else 0}"
        for h in self._hier:
            for name in _children(h.parent, OWNER):
                if name != mark:
                    _rmdir(os.path.join(h.parent, name))
            try:
                os.mkdir(os.path.join(h.parent, mark))
            except FileExistsError:
                pass

    def sweep_abandoned(self, now: float | None = None) -> list[str]:
        """Remove sibling parents left by executors that are gone (see the docstring); return
        the parent directories removed."""
        now = time.time() if now is None else now
        removed = []
        for h in self._hier:
            home = os.path.dirname(h.parent)
            for name in _children(home, PARENT_PREFIX):
                path = os.path.join(home, name)
                if path != h.parent and _abandoned(path, now) and _remove_tree(path):
                    removed.append(path)
        if removed:
            log.info("removed %d cgroup trees of executors that are gone", len(removed))
        return removed

    def close(self, remove_parents: bool) -> None:
        """Go home, close cached fds, and remove the (empty) parents when asked."""
        self.leave()
        for fd in self._home_fds:
            os.close(fd)
        self._home_fds = []
        if remove_parents:
            for h in self._hier:
                for name in _children(h.parent, OWNER):
                    _rmdir(os.path.join(h.parent, name))
                _rmdir(h.parent)


def _children(path: str, prefix: str) -> list[str]:
    """Names of the entries of ``path`` starting with ``prefix`` (none if it is unreadable)."""
    try:
        return [e.name for e in os.scandir(path) if e.name.startswith(prefix)]
    except OSError:
        return []


def _abandoned(parent: str, now: float) -> bool:
    """Whether ``parent``'s executor is gone and nothing of its tasks is left running."""
    marks = _children(parent, OWNER)
    if not marks:
        try:
            if now - os.stat(parent).st_mtime < UNMARKED_GRACE:
                return False
        except OSError:
            return False
    for name in marks:
        pid, _, start = name[len(OWNER) :].partition("-")
        if pid.isdigit() and start.isdigit() and procfs.is_same_process(int(pid), int(start)):
            return False
    return not any(_has_procs(d) for d in _tree(parent))


def _remove_tree(parent: str) -> bool:
    """rmdir ``parent`` and every group below it, deepest first; False if some remain."""
    done = True
    for d in reversed(_tree(parent)):
        done = _rmdir(d) and done
    return done


def _needed(controllers: tuple[str, ...], limits: Limits) -> bool:
    return (
        "memory" in controllers
        or "cpuacct" in controllers
        or ("cpu" in controllers and limits.cpus is not None)
        or ("pids" in controllers and limits.pids is not None)
    )


class SwapCheck:
    """Whether a swap device is on (``/proc/swaps`` lists one), read again at most once per
    ``every`` seconds: a device turned on shows in the limits of tasks started a second later.
    Unreadable counts as on (the swap limit is then written, as always before)."""

    def __init__(self, every: float = 1.0, path: str = "/proc/swaps") -> None:
        self._every = every
        self._path = path
        self._next = 0.0
        self._on = True

    def on(self) -> bool:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every
            try:
                self._on = len(_read(self._path).strip().split(b"\n")) > 1  # a header, devices
            except OSError:
                self._on = True
        return self._on


class Remover:
    """Removes task cgroups on a background thread: an rmdir costs ~70 µs per hierarchy, and a
    group whose processes were just killed stays busy until they have exited (retried, bounded).
    """

    def __init__(self, cg: Cgroups, give_up_after: float = 30.0) -> None:
        self._cg = cg
        self._give_up = give_up_after
        self._jobs: queue.SimpleQueue[TaskCgroup | None] = queue.SimpleQueue()
        self.pending = 0  # approximate (read from the loop, written from the thread)
        self._thread = threading.Thread(target=self._run, name="cgroup-remover", daemon=True)
        self._thread.start()

    def submit(self, tc: TaskCgroup) -> None:
        self.pending += 1
        self._jobs.put(tc)

    def _run(self) -> None:
        while (tc := self._jobs.get()) is not None:
            deadline = time.monotonic() + self._give_up
            delay = 0.001
            while not self._cg.remove(tc):
                for pid in self._cg.procs(tc) - {os.getpid()}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if time.monotonic() > deadline:
                    log.error("task cgroup still busy, left in place: %s", tc.dirs())
                    break
                time.sleep(delay)  # killed processes take a moment to exit
                delay = min(delay * 2, 0.1)
            self.pending -= 1

    def stop(self) -> None:
        """Finish the queued removals, then end the thread."""
        self._jobs.put(None)
        self._thread.join(timeout=self._give_up + 5)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:  # EBUSY: processes left; anything else: the caller retries later
        return False
    return True


def _tree(path: str) -> list[str]:
    """``path`` and the cgroups below it, parents first. A cgroup directory's link count is 2
    plus its subgroups, so the usual childless task group costs one stat, not a listing."""
    try:
        if os.stat(path).st_nlink <= 2:
            return [path]
    except FileNotFoundError:
        return [path]
    out = [path]
    for root, dirs, _files in os.walk(path):
        out.extend(os.path.join(root, d) for d in dirs)
    return out


def _read(path: str) -> bytes:
    """A control file's content through a bare file descriptor: ``open()`` adds an fstat, a
    terminal check and two seeks to every read (the executor reads one or two of these per
    task it forgets)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while chunks[-1]:  # cgroup.procs of a busy group can be longer
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _has_procs(path: str) -> bool:
    """Whether a cgroup holds a process (an unreadable one counts as busy)."""
    try:
        return bool(_read(path + "/cgroup.procs").strip())
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _read_int(path: str) -> int | None:
    try:
        return int(_read(path))
    except (FileNotFoundError, ValueError):
        return None


def _read_key(path: str, key: bytes) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``key value`` lines)."""
    try:
        data = _read(path)
    except FileNotFoundError:
        return None
    for line in data.split(b"\n"):
        k, _, v = line.partition(b" ")
        if k == key:
            return int(v)
    return None
