"""The event log: every task state change, numbered without gaps, stored with the change.

An event is written in the same transaction as the state it describes, so the sequence in the
database has no gaps and no event outlives a rolled-back change. Streams read only committed
events (up to :attr:`EventBus.committed`) and wait for the next commit when they catch up.
"""

from __future__ import annotations

import asyncio
from collections import deque

import msgspec

from .state import Store
from .tasks import utcnow

RECENT = 20_000


class EventBus:
    """Assigns sequence numbers, stores events, wakes followers after each commit."""

    def __init__(self, store: Store, retention: int) -> None:
        self.store = store
        self.retention = retention
        self.seq = store.max_event_seq()
        self.committed = self.seq
        self._recent: deque[tuple[int, bytes]] = deque(maxlen=RECENT)
        self._waiters: list[asyncio.Future[None]] = []
        self._since_trim = 0
        store.on_commit(self._on_commit)

    def publish(self, kind: str, task_json: bytes) -> int:
        """Record a task event (in the current transaction) and return its number.

        ``task_json`` is the task's summary JSON: the event is assembled around it, in the
        shape of :class:`dshell.model.Event`, without encoding the task again."""
        self.seq += 1
        data = b'{"seq":%d,"type":%s,"at":"%s","task":%s}' % (
            self.seq,
            msgspec.json.encode(kind),
            utcnow().encode(),
            task_json,
        )
        self.store.put_event(self.seq, data)
        self._recent.append((self.seq, data))
        self._since_trim += 1
        if self._since_trim >= 1000:
            self._since_trim = 0
            self.store.trim_events(self.retention)
        return self.seq

    def rollback(self) -> None:
        """A commit failed: forget the events that were not stored."""
        self.seq = self.store.max_event_seq()
        while self._recent and self._recent[-1][0] > self.seq:
            self._recent.pop()

    def _on_commit(self) -> None:
        self.committed = self.seq
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def read(self, since: int, limit: int = 1000) -> list[bytes]:
        """Committed events with ``seq > since`` (at most ``limit``)."""
        if since >= self.committed:
            return []
        if self._recent and self._recent[0][0] <= since + 1:
            out: list[bytes] = []
            start = since + 1 - self._recent[0][0]
            for i in range(start, len(self._recent)):
                seq, data = self._recent[i]
                if seq > self.committed or len(out) >= limit:
                    break
                out.append(data)
            return out
        rows = self.store.events_after(since, limit)
        return [d for s, d in rows if s <= self.committed]

    async def wait_after(self, seq: int, timeout: float) -> None:
        """Return once an event after ``seq`` is committed, or after ``timeout``."""
        if self.committed > seq:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
