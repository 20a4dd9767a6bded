"""Small /proc readers: process identity (start time, boot id), environment scans, CPU/RSS.

Process identity across an executor restart is (boot id, pid, start time): pids are recycled
(``pid_max`` is 32768 on these machines) but a recycled pid never has the same start time.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def boot_id() -> str:
    """This boot's id (changes on every reboot)."""
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
        return f.read().strip()


_SECOND: tuple[int, str] = (-1, "")  # the last second now_rfc3339 formatted, and its text


def now_rfc3339() -> str:
    """Current UTC time as RFC 3339 with microseconds and ``Z`` (``2026-11-26T09:59:00.330592Z``,
    what ``datetime.isoformat`` prints), in a third of its time: the date and time are
    formatted once per second (the engine stamps a task's launch and end seven times, the
    executor each exit)."""
    global _SECOND
    second, fraction = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{fraction:06d}Z"


class ProcStat(NamedTuple):
    """The fields of ``/proc/PID/stat`` the executor uses."""

    pid: int
    state: str
    ppid: int
    pgid: int
    session: int
    utime: int  # clock ticks
    stime: int
    start_time: int  # clock ticks since boot (field 22)
    rss_pages: int


def read_stat(pid: int) -> ProcStat | None:
    """Parse ``/proc/PID/stat``; None when the process does not exist."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, 4096)
    except ProcessLookupError:  # it went away between open and read
        return None
    finally:
        os.close(fd)
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=rest[0].decode(),
        ppid=int(rest[1]),
        pgid=int(rest[2]),
        session=int(rest[3]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        start_time=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat`` (start time in ticks since boot), None if gone."""
    st = read_stat(pid)
    return st.start_time if st else None


def is_same_process(pid: int, started: int | None) -> bool:
    """True when ``pid`` is alive (not a zombie) and is the process that started at ``started``."""
    st = read_stat(pid)
    return st is not None and st.state not in ("Z", "X") and st.start_time == started


def all_pids() -> list[int]:
    """Every pid currently listed in /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def pids_with_env(key: str, value: str) -> list[int]:
    """Processes whose initial environment holds ``key=value`` (zombies have none)."""
    needle = f"{key}={value}".encode()
    found = []
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:  # gone, or a kernel thread we may not read
            continue
        if needle in env.split(b"\0"):
            found.append(pid)
    return found


def sessions_usage() -> dict[int, tuple[int, int, int]]:
    """Per session id: (cpu ns, rss bytes, process count), from one pass over /proc.

    The no-cgroup fallback of ``stats``: a task is its own session (it was spawned with setsid),
    so this covers its whole tree except descendants that started a session of their own.
    """
    usage: dict[int, tuple[int, int, int]] = {}
    for pid in all_pids():
        st = read_stat(pid)
        if st is None or st.state == "Z":
            continue
        cpu, rss, n = usage.get(st.session, (0, 0, 0))
        ticks = st.utime + st.stime
        usage[st.session] = (
            cpu + ticks * 1_000_000_000 // _CLK_TCK,
            rss + st.rss_pages * _PAGE,
            n + 1,
        )
    return usage
