"""Task sandboxes: ``state_dir/sandboxes/<task_id>/`` with ``stdout`` and ``stderr``.

A sandbox is a directory and two files: three inode creations, which on a disk cost 0.1-2.5 ms
together (ext4 metadata, measured across hours here) against ~30 µs for one rename. So the
engine keeps ready ones in ``state_dir/sandbox-spares/``, made in its file-system threads once
no launch has been in flight for a second, and a launch renames one into place; without a
spare it makes the sandbox as before. The pool starts at 64 and grows to the largest burst of
launches seen (bursts are counted between idle seconds), up to ``[sandbox] spares`` (default
1024, 0: none).
A spare is an empty directory with empty ``stdout`` and ``stderr``, exactly what a new sandbox
is; those a previous engine left are kept when they still are (and set the pool's size), and
removed otherwise.

Every path a client names is resolved inside one sandbox and checked by component
(``os.path.realpath`` + ``os.path.commonpath``), never by string prefix: ``..``, absolute
paths, a sibling such as ``<id>-evil`` and symlinks pointing outside are refused. Finished
sandboxes are removed by age and while their total size exceeds the configured budget.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import shutil
import stat
import threading
from collections import deque
from collections.abc import Callable, Container, Iterator, Mapping
from pathlib import Path

from dshell.errors import NotFoundError, UsageError
from dshell.model import FileEntry

log = logging.getLogger(__name__)


class SandboxError(Exception):
    """A sandbox could not be created (full disk, unwritable directory)."""


OUTPUT_FILES = ("stdout", "stderr")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
SPARES_DIR = "sandbox-spares"  # beside the sandboxes' directory: same file system, not in it
SPARES_START = 64  # the pool's first size; it grows to the largest burst, up to the cap
_SPARE = "spare-"


class Sandboxes:
    """The directory holding every task's sandbox."""

    def __init__(self, root: Path, spares: int = 0) -> None:
        self.root = root
        # a task's persistent volumes: path in the sandbox -> the volume's directory (set by
        # dshell_local.volumes); a path under one resolves inside that directory instead
        self.volume_dirs: Callable[[str], dict[str, str]] = lambda _task_id: {}
        self.spares_cap = spares
        self.spares_target = min(spares, SPARES_START)
        self.spares_dir = root.parent / SPARES_DIR
        self._spares: deque[str] = deque()
        self._spare_ids = itertools.count()
        self._making = 0  # launch jobs making sandboxes now: making spares waits for them
        self._lock = threading.Lock()

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
            if not self._take_spare(path):
                try:
                    path.mkdir(mode=0o755, exist_ok=True)
                except FileNotFoundError:
                    self.root.mkdir(parents=True, exist_ok=True)
                    path.mkdir(mode=0o755, exist_ok=True)
                _output_files(str(path))
            if workdir:
                (path / workdir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxError(f"cannot create sandbox {path}: {exc.strerror or exc}") from exc
        return path

    # ---- spares -----------------------------------------------------------------------------

    def take_spare(self, task_id: str) -> bool:
        """Rename a spare into the task's sandbox (no work directory): True when done, False
        when there is none (or the sandbox exists): then :meth:`create` makes it. Cheap (a
        rename and three utimes, ~60 µs): the engine calls it on its loop, since in a
        file-system thread each system call waits for the GIL, which a loop busy preparing a
        burst hands over only every switch interval (5 ms): 8 spares took 50 ms that way."""
        return self._take_spare(self.path(task_id))

    def _take_spare(self, path: Path) -> bool:
        """Rename a spare into ``path``; False when there is none, or ``path`` exists (a
        relaunch keeps its sandbox: the spare stays for another task)."""
        while True:
            try:
                spare = self._spares.popleft()
            except IndexError:
                return False
            try:
                try:
                    os.rename(spare, path)  # replaces nothing but an empty directory
                except FileNotFoundError:
                    if not os.path.isdir(spare):
                        continue  # removed meanwhile: try the next
                    self.root.mkdir(parents=True, exist_ok=True)  # the first sandbox
                    os.rename(spare, path)
                base = str(path)  # dated as if made now (the GC reads these times)
                for entry in (base, *(f"{base}/{name}" for name in OUTPUT_FILES)):
                    os.utime(entry)
                return True
            except OSError:  # ENOTEMPTY/EEXIST: the task's sandbox exists (or no root)
                self._spares.appendleft(spare)
                return False

    @contextlib.contextmanager
    def making(self) -> Iterator[None]:
        """Around a launch (the engine holds it from its sandboxes' creation until its spawns
        are answered): spares are not made meanwhile."""
        with self._lock:
            self._making += 1
        try:
            yield
        finally:
            with self._lock:
                self._making -= 1

    def spare_count(self) -> int:
        return len(self._spares)

    def grow(self, burst: int) -> None:
        """Keep as many spares as ``burst`` launches used (never beyond the cap)."""
        self.spares_target = min(self.spares_cap, max(self.spares_target, burst))

    def refill(self) -> int:
        """Make spares up to the pool's size while no launch is making sandboxes (run it in a
        file-system thread); the number made. An OS error stops it (logged): launches then
        make their sandboxes themselves, as without spares."""
        made = 0
        while len(self._spares) < self.spares_target and not self._making:
            spare = str(self.spares_dir / f"{_SPARE}{next(self._spare_ids)}")
            try:
                try:
                    os.mkdir(spare, 0o755)
                except FileNotFoundError:
                    self.spares_dir.mkdir(parents=True, exist_ok=True)
                    os.mkdir(spare, 0o755)
                _output_files(spare)
            except OSError as exc:
                log.warning("cannot make a spare sandbox %s: %s", spare, exc)
                shutil.rmtree(spare, ignore_errors=True)
                break
            self._spares.append(spare)
            made += 1
        return made

    def adopt_spares(self) -> int:
        """At start: keep the spares a previous engine made that are still exactly a new
        sandbox (up to the cap; the pool keeps their number), remove anything else in their
        directory (and all of them without spares). The number kept."""
        try:
            names = sorted(os.listdir(self.spares_dir))
        except OSError:
            return 0
        for name in names:
            path = os.path.join(self.spares_dir, name)
            if len(self._spares) < self.spares_cap and name.startswith(_SPARE) and _pristine(path):
                self._spares.append(path)
                number = name[len(_SPARE) :]
                if number.isdigit():
                    self._spare_ids = itertools.count(max(int(number) + 1, next(self._spare_ids)))
            elif os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.grow(len(self._spares))
        return len(self._spares)

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


def _output_files(sandbox: str) -> None:
    for name in OUTPUT_FILES:
        os.close(os.open(f"{sandbox}/{name}", _CREATE, 0o644))


def _pristine(path: str) -> bool:
    """An empty directory but for empty regular ``stdout`` and ``stderr`` files."""
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or sorted(os.listdir(path)) != sorted(OUTPUT_FILES):
            return False
        for name in OUTPUT_FILES:
            f = os.lstat(os.path.join(path, name))
            if not stat.S_ISREG(f.st_mode) or f.st_size:
                return False
    except OSError:
        return False
    return True
