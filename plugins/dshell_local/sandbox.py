"""Task sandboxes: ``state_dir/sandboxes/<task_id>/`` with ``stdout`` and ``stderr``.

Every path a client names is resolved inside one sandbox and checked by component
(``os.path.realpath`` + ``os.path.commonpath``), never by string prefix: ``..``, absolute
paths, a sibling such as ``<id>-evil`` and symlinks pointing outside are refused. Finished
sandboxes are removed by age and while their total size exceeds the configured budget.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import stat
from collections.abc import Callable, Container, Mapping
from pathlib import Path

from dshell.errors import NotFoundError, UsageError
from dshell.model import FileEntry

log = logging.getLogger(__name__)


class SandboxError(Exception):
    """A sandbox could not be created (full disk, unwritable directory)."""


OUTPUT_FILES = ("stdout", "stderr")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


class Sandboxes:
    """The directory holding every task's sandbox."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # a task's persistent volumes: path in the sandbox -> the volume's directory (set by
        # dshell_local.volumes); a path under one resolves inside that directory instead
        self.volume_dirs: Callable[[str], dict[str, str]] = lambda _task_id: {}

    def path(self, task_id: str) -> Path:
        return self.root / task_id

    def create(self, task_id: str, workdir: str | None = None) -> Path:
        """Make the sandbox directory with its empty ``stdout``/``stderr`` files; SandboxError
        on any OS failure. (The ``.dshell`` directory is made only by those who need it, e.g.
        the process runner.)

        Creating the files here (in the engine's file-system threads, many at once) keeps
        file creation out of the executor's spawn: the child opens them with O_CREAT while
        the executor waits, and on a slow disk a creation costs up to a millisecond."""
        path = self.path(task_id)
        try:
            try:
                path.mkdir(mode=0o755, exist_ok=True)
            except FileNotFoundError:
                self.root.mkdir(parents=True, exist_ok=True)
                path.mkdir(mode=0o755, exist_ok=True)
            base = str(path)
            for name in OUTPUT_FILES:
                os.close(os.open(f"{base}/{name}", _CREATE, 0o644))
            if workdir:
                (path / workdir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxError(f"cannot create sandbox {path}: {exc.strerror or exc}") from exc
        return path

    def resolve(self, task_id: str, rel: str) -> Path:
        """The real path of ``rel`` inside the task's sandbox; UsageError if it escapes."""
        if "\x00" in rel:
            raise UsageError("path contains a NUL byte")
        if os.path.isabs(rel):
            raise UsageError(f"{rel!r}: absolute paths are not allowed in a sandbox")
        if ".." in Path(rel).parts:
            raise UsageError(f"{rel!r}: '..' is not allowed in a sandbox path")
        through = self._through_volume(task_id, rel)
        if through is not None:
            return through
        base = os.path.realpath(self.path(task_id))
        if not os.path.isdir(base):
            raise NotFoundError(f"task {task_id}: sandbox is gone")
        full = os.path.realpath(os.path.join(base, rel))
        if os.path.commonpath([base, full]) != base:
            raise UsageError(f"{rel!r}: path leads outside the sandbox of {task_id}")
        return Path(full)

    def _through_volume(self, task_id: str, rel: str) -> Path | None:
        """``rel`` inside one of the task's persistent volumes (same checks as the sandbox),
        or None when it is not under a volume's path."""
        parts = Path(rel).parts
        for where, directory in self.volume_dirs(task_id).items():
            head = Path(where).parts
            if parts[: len(head)] != head:
                continue
            base = os.path.realpath(directory)
            if not os.path.isdir(base):
                raise NotFoundError(f"task {task_id}: the volume at {where!r} is gone")
            full = os.path.realpath(os.path.join(base, *parts[len(head) :]))
            if os.path.commonpath([base, full]) != base:
                raise UsageError(f"{rel!r}: path leads outside the volume at {where!r}")
            return Path(full)
        return None

    def list_dir(self, task_id: str, rel: str) -> list[FileEntry]:
        path = self.resolve(task_id, rel or ".")
        try:
            if not path.is_dir():
                return [_entry(path.name, path.lstat())]
            names = sorted(os.listdir(path))
        except FileNotFoundError:
            raise NotFoundError(f"{task_id}: no such file {rel!r}") from None
        entries = []
        for name in names:
            try:
                entries.append(_entry(name, os.lstat(path / name)))
            except FileNotFoundError:
                continue
        return entries

    def open_file(self, task_id: str, rel: str) -> tuple[Path, int]:
        """A regular file inside the sandbox and its current size."""
        path = self.resolve(task_id, rel)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFoundError(f"{task_id}: no such file {rel!r}") from None
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{task_id}: {rel!r} is not a regular file")
        return path, st.st_size

    def remove(self, task_id: str) -> None:
        shutil.rmtree(self.path(task_id), ignore_errors=True)

    def finished(
        self, active: Container[str], ended: Mapping[str, str] | None = None
    ) -> list[tuple[str, float]]:
        """``(task_id, ended_epoch)`` of every sandbox whose task is not active; the end is
        the task's recorded end (``ended``: id -> RFC 3339 time), else the sandbox's last
        activity (a task the engine no longer remembers)."""
        ended = ended or {}
        out = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name in active or not entry.is_dir(follow_symlinks=False):
                continue
            when = _epoch(ended.get(entry.name)) or _last_activity(entry)
            if when is None:
                continue
            out.append((entry.name, when))
        return out

    def gc(
        self, finished: list[tuple[str, float]], max_age: float, max_bytes: float, now: float
    ) -> list[str]:
        """Remove finished sandboxes (``(task_id, finished_epoch)``, oldest first) by age and
        total size; return the ids removed."""
        removed: list[str] = []
        sizes: dict[str, int] = {}
        for task_id, _ in finished:
            sizes[task_id] = _tree_size(self.path(task_id))
        total = sum(sizes.values())
        for task_id, finished_at in sorted(finished, key=lambda f: f[1]):
            if now - finished_at > max_age or total > max_bytes:
                self.remove(task_id)
                total -= sizes[task_id]
                removed.append(task_id)
        return removed


def _epoch(stamp: str | None) -> float | None:
    if stamp is None:
        return None
    try:
        return dt.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _last_activity(entry: os.DirEntry[str]) -> float | None:
    """The newest of the sandbox directory's and its output files' modification times."""
    times = []
    for path in (entry.path, *(os.path.join(entry.path, name) for name in OUTPUT_FILES)):
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            continue
    return max(times, default=None)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _entry(name: str, st: os.stat_result) -> FileEntry:
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    mtime = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat().replace("+00:00", "Z")
    return FileEntry(
        name=name, kind=kind, size=st.st_size, mtime=mtime, mode=stat.filemode(st.st_mode)
    )
