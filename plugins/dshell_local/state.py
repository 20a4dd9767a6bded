"""The engine's durable state: SQLite in WAL mode, one writer (the engine), group commit.

Durability choice (documented in docs/engine-api.md): ``synchronous=NORMAL`` in WAL mode. A
commit reaches the WAL file before a request is answered, so everything acknowledged survives
a crash of the engine process (``kill -9``, ``os._exit``); the last transactions may be lost
on a power failure or kernel crash, which the engine accepts for launch throughput.

Group commit: writes run at once on the event loop's thread inside an open transaction;
``await store.commit()`` schedules one COMMIT for everything written during the current
loop iteration and wakes every waiter when it is done. Reads on the same connection see the
writes not yet committed, which is what the single writer wants (idempotency checks).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    active INTEGER NOT NULL,
    idem_key TEXT,
    data BLOB NOT NULL,
    summary BLOB NOT NULL,
    runtime BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_active ON tasks(active) WHERE active = 1;
CREATE INDEX IF NOT EXISTS tasks_idem ON tasks(idem_key) WHERE idem_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS job_runs (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job, n)
);
"""
SCHEMA_VERSION = "1"


class StoreError(Exception):
    """The database could not be written (full disk, I/O error)."""


class Store:
    """SQLite access for the engine. Not thread-safe: use it from the event loop only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
        )
        self._begun = False  # a BEGIN is open
        self._dirty = False  # something was written (buffered or executed) since the commit
        self._task_rows: dict[str, tuple[str, int, str | None, bytes, bytes, bytes]] = {}
        self._event_rows: list[tuple[int, bytes]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._on_commit: list[Callable[[], None]] = []
        self._on_rollback: list[Callable[[], None]] = []

    def close(self) -> None:
        if self._dirty:
            self._flush()
        self._db.close()

    # ---- writes ---------------------------------------------------------------------------
    # Rows are buffered until the commit (or a read) and then written with executemany: a
    # short task's STARTING, RUNNING and FINISHED often collapse into one row write.

    def _begin(self) -> None:
        self._dirty = True
        if not self._begun:
            self._db.execute("BEGIN")
            self._begun = True

    def _apply(self) -> None:
        """Write the buffered rows into the open transaction (reads see them afterwards)."""
        if not self._task_rows and not self._event_rows:
            return
        self._begin()
        rows, self._task_rows = list(self._task_rows.values()), {}
        events, self._event_rows = self._event_rows, []
        self._db.executemany(
            "INSERT INTO tasks(id, active, idem_key, data, summary, runtime) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET active=excluded.active, data=excluded.data, "
            "summary=excluded.summary, runtime=excluded.runtime",
            rows,
        )
        self._db.executemany("INSERT INTO events(seq, data) VALUES (?, ?)", events)

    def put_task(
        self,
        task_id: str,
        active: bool,
        idem_key: str | None,
        rows: tuple[bytes, bytes, bytes],
    ) -> None:
        """Insert or replace one task row: ``rows`` is (full JSON, summary JSON, runtime JSON);
        the creation order ``n`` is kept on update."""
        data, summary, runtime = rows
        self._dirty = True
        self._task_rows[task_id] = (task_id, int(active), idem_key, data, summary, runtime)

    def put_event(self, seq: int, data: bytes) -> None:
        self._dirty = True
        self._event_rows.append((seq, data))

    def put_service(self, name: str, data: bytes | None) -> None:
        """Write (or, with ``None``, delete) a service's record in the open transaction."""
        self._apply()
        self._begin()
        if data is None:
            self._db.execute("DELETE FROM services WHERE name = ?", (name,))
        else:
            self._db.execute(
                "INSERT INTO services(name, data) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET data=excluded.data",
                (name, data),
            )

    def services(self) -> list[bytes]:
        """Every service record, by name."""
        self._apply()
        rows = self._db.execute("SELECT data FROM services ORDER BY name").fetchall()
        return [bytes(r[0]) for r in rows]

    def put_agent(self, agent_id: str, data: bytes) -> None:
        """Write an agent's admin record (maintenance state, attribute changes, windows)."""
        self._apply()
        self._begin()
        self._db.execute(
            "INSERT INTO agents(id, data) VALUES (?, ?) "
            "ON CONFLICT(id) DO UPDATE SET data=excluded.data",
            (agent_id, data),
        )

    def agents(self) -> list[bytes]:
        """Every agent admin record, by id."""
        self._apply()
        rows = self._db.execute("SELECT data FROM agents ORDER BY id").fetchall()
        return [bytes(r[0]) for r in rows]

    def put_role(self, name: str, data: bytes | None) -> None:
        """Write (or, with ``None``, delete) a role's quota/weight/reservation record."""
        self._apply()
        self._begin()
        if data is None:
            self._db.execute("DELETE FROM roles WHERE name = ?", (name,))
        else:
            self._db.execute(
                "INSERT INTO roles(name, data) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET data=excluded.data",
                (name, data),
            )

    def roles(self) -> list[bytes]:
        """Every role record, by name."""
        self._apply()
        rows = self._db.execute("SELECT data FROM roles ORDER BY name").fetchall()
        return [bytes(r[0]) for r in rows]

    def put_volume(self, name: str, data: bytes | None) -> None:
        """Write (or, with ``None``, delete) a persistent volume's record."""
        self._apply()
        self._begin()
        if data is None:
            self._db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        else:
            self._db.execute(
                "INSERT INTO volumes(name, data) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET data=excluded.data",
                (name, data),
            )

    def volumes(self) -> list[bytes]:
        """Every persistent volume record, by name."""
        self._apply()
        rows = self._db.execute("SELECT data FROM volumes ORDER BY name").fetchall()
        return [bytes(r[0]) for r in rows]

    def put_job(self, name: str, data: bytes | None) -> None:
        """Write (or, with ``None``, delete with its runs) a batch job's record."""
        self._apply()
        self._begin()
        if data is None:
            self._db.execute("DELETE FROM jobs WHERE name = ?", (name,))
            self._db.execute("DELETE FROM job_runs WHERE job = ?", (name,))
        else:
            self._db.execute(
                "INSERT INTO jobs(name, data) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET data=excluded.data",
                (name, data),
            )

    def put_job_run(self, job: str, n: int, data: bytes) -> None:
        """Write one run of a batch job in the open transaction."""
        self._apply()
        self._begin()
        self._db.execute(
            "INSERT INTO job_runs(job, n, data) VALUES (?, ?, ?) "
            "ON CONFLICT(job, n) DO UPDATE SET data=excluded.data",
            (job, n, data),
        )

    def jobs(self) -> list[bytes]:
        """Every batch job record, by name."""
        self._apply()
        rows = self._db.execute("SELECT data FROM jobs ORDER BY name").fetchall()
        return [bytes(r[0]) for r in rows]

    def job_runs(self, job: str, limit: int | None = None) -> list[bytes]:
        """The runs of ``job``, oldest first (the newest ``limit`` when given)."""
        self._apply()
        rows = self._db.execute(
            "SELECT data FROM (SELECT n, data FROM job_runs WHERE job = ? ORDER BY n DESC "
            "LIMIT ?) ORDER BY n",
            (job, -1 if limit is None else limit),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def trim_job_runs(self, job: str, keep: int) -> None:
        """Forget the runs of ``job`` older than its newest ``keep``."""
        self._apply()
        self._begin()
        self._db.execute(
            "DELETE FROM job_runs WHERE job = ? AND n <= "
            "(SELECT MAX(n) FROM job_runs WHERE job = ?) - ?",
            (job, job, keep),
        )

    def trim_tasks(self, keep: int) -> int:
        """Forget finished tasks beyond the newest ``keep``; how many rows went (committed by
        the caller's next commit)."""
        self._apply()
        row = self._db.execute(
            "SELECT n FROM tasks WHERE active = 0 ORDER BY n DESC LIMIT 1 OFFSET ?", (keep,)
        ).fetchone()
        if row is None:
            return 0
        self._begin()
        cur = self._db.execute("DELETE FROM tasks WHERE active = 0 AND n <= ?", (row[0],))
        return cur.rowcount

    def trim_events(self, keep: int) -> None:
        self._apply()
        self._begin()
        self._db.execute(
            "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?", (keep,)
        )

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every successful commit (the event bus's watermark)."""
        self._on_commit.append(callback)

    def on_rollback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after a failed commit was rolled back."""
        self._on_rollback.append(callback)

    async def commit(self) -> None:
        """Wait until everything written so far is committed (one COMMIT per loop pass)."""
        if not self._dirty and not self._scheduled:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        await fut

    def commit_now(self) -> None:
        """Commit synchronously (start-up and shutdown paths)."""
        self._flush()

    def _flush(self) -> None:
        self._scheduled = False
        waiters, self._waiters = self._waiters, []
        error: StoreError | None = None
        if self._dirty:
            try:
                self._apply()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                log.error("commit failed: %s", exc)
                error = StoreError(f"engine database write failed: {exc}")
                self._task_rows.clear()
                self._event_rows.clear()
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self._begun = self._dirty = False
        for callback in self._on_commit if error is None else self._on_rollback:
            callback()
        for fut in waiters:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    # ---- reads ----------------------------------------------------------------------------

    def active_tasks(self) -> list[tuple[bytes, bytes]]:
        self._apply()
        rows = self._db.execute(
            "SELECT data, runtime FROM tasks WHERE active = 1 ORDER BY n"
        ).fetchall()
        return [(bytes(d), bytes(r)) for d, r in rows]

    def finished_times(self) -> dict[str, str]:
        """``task id -> finished_at`` (RFC 3339) of every finished task the store keeps."""
        self._apply()
        rows = self._db.execute(
            "SELECT id, json_extract(summary, '$.finished_at') FROM tasks WHERE active = 0"
        ).fetchall()
        return {task_id: ended for task_id, ended in rows if isinstance(ended, str)}

    def task_json(self, task_id: str) -> bytes | None:
        self._apply()
        row = self._db.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return bytes(row[0]) if row else None

    def all_tasks_json(self, limit: int | None = None, full: bool = False) -> list[bytes]:
        """Every task (newest last), or the newest ``limit``; summaries unless ``full``."""
        self._apply()
        column = "data" if full else "summary"
        if limit is None:
            rows = self._db.execute(f"SELECT {column} FROM tasks ORDER BY n").fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {column} FROM (SELECT n, {column} FROM tasks ORDER BY n DESC LIMIT ?) "
                "ORDER BY n",
                (limit,),
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def ids_for_key(self, idem_key: str) -> list[str]:
        self._apply()
        rows = self._db.execute(
            "SELECT id FROM tasks WHERE idem_key = ? ORDER BY n", (idem_key,)
        ).fetchall()
        return [r[0] for r in rows]

    def last_task_id(self) -> str | None:
        self._apply()
        row = self._db.execute("SELECT id FROM tasks ORDER BY n DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def max_event_seq(self) -> int:
        self._apply()
        row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def events_after(self, seq: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        self._apply()
        rows = self._db.execute(
            "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [(int(s), bytes(d)) for s, d in rows]
