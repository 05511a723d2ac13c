"""The durable queue: accepted OTLP requests, on disk before the client hears OK.

One SQLite row per request (never per span), in WAL mode. A row is deleted only once
upstream acknowledged it, so whatever was acknowledged to a client survives a crash or a
kill -9 and is sent after the next start (at-least-once). With ``fsync`` off (the default)
SQLite runs ``synchronous=NORMAL``: durable against the daemon dying, not against the
machine losing power; ``fsync: true`` makes it ``FULL``.

All disk work happens on the queue's writer thread (:class:`SqliteWriter`): the event loop
awaits :meth:`DurableQueue.put_async` and serves other requests meanwhile, and puts that
arrive together are committed (and fsynced) as one transaction. A failed write raises
:class:`StorageError`; for ``STORAGE_COOLDOWN`` seconds after one, :meth:`storage_error`
tells the receivers to refuse new requests before doing any work on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.stores import ballast
from agent_sre_daemon.stores.errors import StorageError
from agent_sre_daemon.stores.sqlite import open_database
from agent_sre_daemon.stores.writer import SqliteWriter

if TYPE_CHECKING:
    import concurrent.futures
    from pathlib import Path

    from agent_sre_daemon.clock import Clock

STORAGE_COOLDOWN = 1.0
"""Seconds receivers refuse (UNAVAILABLE, reason ``storage``) after a failed write, before a
request is let through again to find out whether the disk recovered."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signal TEXT NOT NULL,
    created REAL NOT NULL,
    items INTEGER NOT NULL,
    body BLOB NOT NULL
)
"""


WAL_PAGES = 256
WAL_LIMIT_BYTES = 1024 * 1024
"""The WAL is checkpointed every ``WAL_PAGES`` pages and cut back to ``WAL_LIMIT_BYTES``."""


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    id: int
    signal: str
    created: float
    items: int
    body: bytes


class DurableQueue:
    """A byte-capped FIFO of serialized OTLP requests in SQLite.

    Rows handed out by :meth:`lease_batch` are in flight until :meth:`ack` deletes them;
    leases live in memory only, so after a restart every remaining row is pending again.
    The ``*_async`` methods are for the event loop; the plain ones block (scripts, tests).

    Raises (every method touching the disk):
        StorageError: the write or read failed; nothing changed.
    """

    def __init__(
        self, path: Path, max_bytes: int, fsync: bool = False, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        """Guards the counters: puts are counted when submitted, settled on the writer."""
        self._bytes = 0
        self._count = 0
        self._oldest: float | None = None
        self._leased: set[int] = set()
        """Touched on the writer thread only."""
        self._failed_at = float("-inf")
        self._last_error = ""

        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            # requests move from the WAL into the file every MiB, and the WAL is cut back
            # to that: on a full disk the deletes of what was sent need only a little room
            # in a WAL that is reused, not a checkpoint of everything received meanwhile
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            db.execute(_SCHEMA)
            size, count, oldest = db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*), MIN(created) FROM requests"
            ).fetchone()
            self._bytes, self._count, self._oldest = size, count, oldest

        db = open_database(path, setup, clock=clock, lost="requests waiting to be sent upstream")
        self._writer = SqliteWriter(db, path)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def oldest_created(self) -> float | None:
        """Creation time of the oldest waiting request, or None when empty."""
        return self._oldest if self._count else None

    def has_room(self, size: int) -> bool:
        """Whether a request of ``size`` bytes fits under the cap (an empty queue always has)."""
        return not self._count or self._bytes + size <= self.max_bytes

    def storage_error(self) -> str | None:
        """The last write error while it is fresh (receivers refuse meanwhile), else None."""
        if self.clock.monotonic() - self._failed_at < STORAGE_COOLDOWN:
            return self._last_error
        if ballast.holding_back():
            return (
                f"{self.path.parent} is full; the room kept for deleting what was sent is in "
                "use until the disk has room again"
            )
        return None

    async def put_async(self, signal: str, body: bytes, items: int, now: float) -> int:
        """Stores one request durably (committed, with its neighbours, on the writer thread)
        and returns its id; the caller acknowledges its client only after this returns.

        The byte cap is enforced at admission (:meth:`has_room`), before a request is
        processed, so a request already observed is never refused for room here.
        """
        return await asyncio.wrap_future(self.put_nowait(signal, body, items, now))

    def put(self, signal: str, body: bytes, items: int, now: float) -> int:
        """:meth:`put_async`, blocking (off the event loop)."""
        return self.put_nowait(signal, body, items, now).result()

    def put_nowait(
        self, signal: str, body: bytes, items: int, now: float
    ) -> concurrent.futures.Future[int]:
        """Submits the write and returns at once; the future holds the id or the error."""
        size = len(body)
        with self._lock:
            # Counted now so admission sees puts still on their way to the disk.
            self._bytes += size
            self._count += 1
            if self._oldest is None:
                self._oldest = now

        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO requests (signal, created, items, body) VALUES (?, ?, ?, ?)",
                (signal, now, items, body),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        future = self._writer.submit(insert, group=True)

        def settle(done: concurrent.futures.Future[int]) -> None:
            if done.cancelled() or done.exception() is not None:
                with self._lock:
                    self._bytes -= size
                    self._count -= 1
                    if not self._count:
                        self._oldest = None
                exc = None if done.cancelled() else done.exception()
                if isinstance(exc, StorageError):
                    self._failed(exc)

        future.add_done_callback(settle)
        return future

    def _failed(self, exc: StorageError) -> None:
        self._last_error = str(exc)
        self._failed_at = self.clock.monotonic()

    async def lease_batch_async(
        self, max_bytes: int, max_requests: int = 1000
    ) -> list[QueuedRequest]:
        """Hands out the oldest waiting requests of one signal, up to ``max_bytes`` together
        (at least one request, however large), oldest first."""
        return await self._writer.call(lambda db: self._lease(db, max_bytes, max_requests))

    def lease_batch(self, max_bytes: int, max_requests: int = 1000) -> list[QueuedRequest]:
        """:meth:`lease_batch_async`, blocking."""
        return self._writer.run(lambda db: self._lease(db, max_bytes, max_requests))

    def _lease(
        self, db: sqlite3.Connection, max_bytes: int, max_requests: int
    ) -> list[QueuedRequest]:
        # Leased rows are the oldest, so skipping them costs at most len(leased) rows.
        heads = db.execute(
            "SELECT id, signal, LENGTH(body) FROM requests ORDER BY id LIMIT ?",
            (max_requests + len(self._leased),),
        ).fetchall()
        picked: list[int] = []
        signal = ""
        size = 0
        for request_id, request_signal, length in heads:
            if request_id in self._leased:
                continue
            if picked and (request_signal != signal or size + length > max_bytes):
                break
            signal = request_signal
            picked.append(request_id)
            size += length
            if len(picked) >= max_requests:
                break
        if not picked:
            return []
        placeholders = ",".join("?" * len(picked))
        rows = db.execute(
            "SELECT id, signal, created, items, body FROM requests"
            f" WHERE id IN ({placeholders}) ORDER BY id",
            picked,
        ).fetchall()
        self._leased.update(picked)
        return [QueuedRequest(*row) for row in rows]

    async def ack_async(self, requests: list[QueuedRequest]) -> None:
        """Deletes requests upstream has (or that were dropped by policy), in one statement.
        On a :class:`StorageError` they stay leased (not sent twice); ack them again."""
        if requests:
            await self._writer.call(lambda db: self._delete(db, requests))

    def ack(self, requests: list[QueuedRequest]) -> None:
        """:meth:`ack_async`, blocking."""
        if requests:
            self._writer.run(lambda db: self._delete(db, requests))

    def _delete(self, db: sqlite3.Connection, requests: list[QueuedRequest]) -> None:
        ids = [request.id for request in requests]
        placeholders = ",".join("?" * len(ids))
        db.execute(f"DELETE FROM requests WHERE id IN ({placeholders})", ids)
        oldest_gone = False
        removed = 0
        for request in requests:
            self._leased.discard(request.id)
            removed += len(request.body)
            oldest_gone |= request.created <= (self._oldest or 0.0)
        oldest = None
        if oldest_gone:
            oldest = db.execute("SELECT MIN(created) FROM requests").fetchone()[0]
        with self._lock:
            self._bytes -= removed
            self._count -= len(requests)
            if self._count <= 0:
                self._oldest = None
            elif oldest_gone:
                self._oldest = oldest
            drained = self._count <= 0
        if drained and ballast.holding_back():
            # drained on a full disk: SQLite keeps the freed pages in its file, so the
            # ballast could never be laid again and new requests would stay refused; give
            # them back to the file system (cheap: the queue is empty)
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("VACUUM")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            ballast.tend()  # the room is back: lay the ballast, take requests again

    def release(self, requests: list[QueuedRequest]) -> None:
        """Hands leased requests back (sent again later), e.g. when a sender stops."""
        ids = [request.id for request in requests]

        def unlease(db: sqlite3.Connection) -> None:
            self._leased.difference_update(ids)

        self._writer.submit(unlease)

    def close(self) -> None:
        """Finishes the writes already submitted, then closes the file."""
        self._writer.close()
