"""The background refresher: keeps a snapshot of live ids (tasks, services, agents) per mount.

As in pgcli's completion refresher, the work happens off the prompt's thread and the
completer only ever reads the last finished :class:`~dshell.completion.live.Snapshot`, so a
slow or dead cluster never freezes typing. Each mount is asked in its own thread; one that has
not answered within ``timeout`` is reported as slow (and not asked again while that call is
still hanging). A refresh runs at start, after each command (:meth:`Refresher.request`) and
every ``interval`` seconds. The refresher has its own backend instances (its own registry),
so it never shares one with a command running on the main thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..completion.live import Snapshot, fetch
from ..errors import DshellError

if TYPE_CHECKING:
    from ..backend import Mount
    from ..namespace import MountTable
    from ..plugins import Registry


@dataclass(frozen=True)
class Status:
    """What the toolbar shows about the refresher."""

    refreshing: bool = False
    last: float | None = None  # time.time() of the last finished refresh
    problems: dict[str, str] = field(default_factory=dict)  # target (or "mounts") -> text


class Refresher:
    """Fetches ids in the background; :meth:`snapshot` and :meth:`status` never block."""

    def __init__(
        self,
        table: MountTable,
        environ: dict[str, str],
        *,
        timeout: float = 2.0,
        interval: float = 30.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.table = table
        self.environ = environ
        self.timeout = timeout
        self.interval = interval
        self.on_change = on_change or (lambda: None)
        self._snapshot = Snapshot()
        self._status = Status()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: set[str] = set()
        self._registry: Registry | None = None
        self._thread: threading.Thread | None = None
        self.rounds = 0  # finished refreshes (tests wait on this, never on time)
        self._round_done = threading.Condition(self._lock)

    # ---- what the prompt reads -----------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def status(self) -> Status:
        return self._status

    # ---- control -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dshell-refresher", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Refresh soon (after a command: it may have changed what exists)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._registry is not None and not self._inflight:
            self._registry.close()  # a hanging call may still hold a backend: leave those

    def wait_rounds(self, n: int, timeout: float) -> bool:
        """Block until ``n`` refreshes have finished (for tests and diagnostics)."""
        with self._round_done:
            return self._round_done.wait_for(lambda: self.rounds >= n, timeout)

    # ---- the work --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._wake.wait(self.interval)
            self._wake.clear()

    def refresh(self) -> None:
        """One round: read the mount table, ask every mount (in parallel), publish."""
        self._status = replace(self._status, refreshing=True)
        self.on_change()
        problems: dict[str, str] = {}
        try:
            mounts = self.table.load()
            registry = self._get_registry()
        except DshellError as exc:
            self._publish(self._snapshot, {"mounts": exc.message})
            return
        threads = [self._ask(registry, m) for m in mounts if m.target not in self._inflight]
        deadline = time.monotonic() + self.timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        ids = {m.target: self._snapshot.ids.get(m.target) for m in mounts}
        for m in mounts:
            if m.target in self._inflight:
                problems[m.target] = f"slow (no answer in {self.timeout:g}s)"
            elif (got := ids.get(m.target)) is not None and got.error:
                problems[m.target] = got.error.split(":", 1)[0]
        snap = Snapshot(
            mounts=tuple(mounts),
            ids={k: v for k, v in ids.items() if v is not None},
            backends=tuple(registry.names()),
        )
        self._publish(snap, problems)

    def _get_registry(self) -> Registry:
        if self._registry is None:
            from ..plugins import Registry

            self._registry = Registry.discover(self.environ)
        return self._registry

    def _ask(self, registry: Registry, mount: Mount) -> threading.Thread:
        self._inflight.add(mount.target)

        def work() -> None:
            result = fetch(registry, mount)
            with self._lock:
                ids = dict(self._snapshot.ids)
                old = ids.get(mount.target)
                if result.error and old is not None:
                    # Keep the last good ids for completion; remember the failure.
                    result = replace(old, error=result.error, at=result.at)
                ids[mount.target] = result
                self._snapshot = replace(self._snapshot, ids=ids)
                self._inflight.discard(mount.target)
                late = mount.target in self._status.problems
                if late:  # it was reported slow: say what it answered after all
                    problems = dict(self._status.problems)
                    problems.pop(mount.target)
                    if result.error:
                        problems[mount.target] = result.error.split(":", 1)[0]
                    self._status = replace(self._status, problems=problems)
            if late:
                self.on_change()

        thread = threading.Thread(target=work, name=f"dshell-ids-{mount.target}", daemon=True)
        thread.start()
        return thread

    def _publish(self, snap: Snapshot, problems: dict[str, str]) -> None:
        with self._lock:
            self._snapshot = snap
            self._status = Status(refreshing=False, last=time.time(), problems=problems)
            self.rounds += 1
            self._round_done.notify_all()
        self.on_change()
