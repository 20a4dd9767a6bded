"""Job output files (``cat``, ``tail -f``, attached runs) and ``exec`` handles.

Slurm has no log API: slurmd writes a batch job's stdout/stderr into files on a filesystem the
login node shares. dshell reads them by byte offset (locally, or over SFTP) and, when
following, polls until the job is terminal, then reads once more so nothing written at the
end is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from dshell.backend import ExecHandle
from dshell.errors import NotFoundError
from dshell.model import FileEntry, OutputChunk

from .runner import READ_LIMIT, Process, Runner

STREAMS = ("stdout", "stderr")
CLOCK_SKEW = 5.0  # seconds between the login node's and the compute node's clocks


def _read(runner: Runner, path: str, offset: int) -> bytes:
    try:
        return runner.read(path, offset, READ_LIMIT)
    except NotFoundError:
        return b""  # not created yet (the job has not started)


def follow_files(
    runner: Runner,
    files: list[tuple[str, str, int]],
    *,
    follow: bool,
    probe: Callable[[], tuple[float | None, bool]],
    poll: float,
) -> Iterator[OutputChunk]:
    """Chunks of ``(stream, path, offset)`` files; with ``follow``, until the job ends.

    ``probe()`` looks the job up once: (its start in epoch seconds or None while pending,
    whether it is terminal). Nothing is read before the job starts, and a file older than that
    start is a stale one from an earlier job with the same id, skipped until slurmd recreates
    it. The job is probed at most once per ``poll`` seconds of quiet; once it is terminal,
    every file is read to its end one last time.
    """
    start, done = probe()
    while start is None:  # pending: slurmd has not created the files yet
        if done or not follow:
            return  # it never ran
        time.sleep(poll)
        start, done = probe()
    offsets = {path: offset for _stream, path, offset in files}
    fresh: set[str] = set()
    last_pass = done or not follow
    while True:
        progressed = False
        for stream, path, _ in files:
            if path not in fresh:
                st = runner.stat(path)
                if st is None or st.mtime < start - CLOCK_SKEW:
                    continue
                fresh.add(path)
            for data in _chunks(runner, path, offsets[path]):
                yield OutputChunk(stream, data, offsets[path])
                offsets[path] += len(data)
                progressed = True
        if last_pass:
            return
        if not progressed:
            if probe()[1]:
                last_pass = True
                continue
            time.sleep(poll)


def _chunks(runner: Runner, path: str, offset: int) -> Iterator[bytes]:
    """Everything currently in ``path`` from ``offset``, in READ_LIMIT pieces."""
    while True:
        data = _read(runner, path, offset)
        if data:
            yield data
            offset += len(data)
        if len(data) < READ_LIMIT:
            return


def entries(runner: Runner, paths: dict[str, str]) -> list[FileEntry]:
    """``ls`` of a job's sandbox: its output streams (size once the files exist)."""
    out = []
    for name, path in paths.items():
        st = runner.stat(path)
        out.append(
            FileEntry(
                name=name,
                kind="file",
                size=st.size if st else None,
                mtime=_iso(st.mtime) if st else None,
                detail=path,
            )
        )
    return out


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class SrunExec(ExecHandle):
    """``srun --jobid=ID --overlap CMD`` as an exec handle (stdin closed: no TTY support)."""

    def __init__(self, proc: Process) -> None:
        self._proc = proc
        self._status: int | None = None

    def chunks(self) -> Iterator[OutputChunk]:
        offsets = dict.fromkeys(STREAMS, 0)
        for stream, data in self._proc.chunks():
            yield OutputChunk(stream, data, offsets[stream])
            offsets[stream] += len(data)

    def status(self) -> int:
        if self._status is None:
            self._status = self._proc.status()
        return self._status

    def close(self) -> None:
        self._proc.close()
