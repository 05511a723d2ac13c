"""The durable queue: accepted OTLP requests, on disk before the client hears OK.

One SQLite row per request (never per span), in WAL mode. A row is deleted only once
upstream acknowledged it, so whatever was acknowledged to a client survives a crash or a
kill -9 and is sent after the next start (at-least-once). With ``fsync`` off (the default)
SQLite runs ``synchronous=NORMAL``: durable against the daemon dying, not against the
machine losing power; ``fsync: true`` makes it ``FULL``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signal TEXT NOT NULL,
    created REAL NOT NULL,
    items INTEGER NOT NULL,
    body BLOB NOT NULL
)
"""


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
    """

    def __init__(self, path: Path, max_bytes: int, fsync: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute(_SCHEMA)
        size, count, oldest = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*), MIN(created) FROM requests"
        ).fetchone()
        self._bytes: int = size
        self._count: int = count
        self._oldest: float | None = oldest
        self._leased: set[int] = set()

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

    def put(self, signal: str, body: bytes, items: int, now: float) -> int:
        """Stores one request durably and returns its id.

        The byte cap is enforced at admission (:meth:`has_room`), before a request is
        processed, so a request already observed is never refused here.
        """
        cur = self._db.execute(
            "INSERT INTO requests (signal, created, items, body) VALUES (?, ?, ?, ?)",
            (signal, now, items, body),
        )
        self._bytes += len(body)
        self._count += 1
        if self._oldest is None:
            self._oldest = now
        assert cur.lastrowid is not None
        return cur.lastrowid

    def lease_batch(self, max_bytes: int, max_requests: int = 1000) -> list[QueuedRequest]:
        """Hands out the oldest waiting requests of one signal, up to ``max_bytes`` together
        (at least one request, however large), oldest first."""
        # Leased rows are the oldest, so skipping them costs at most len(leased) rows.
        heads = self._db.execute(
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
        rows = self._db.execute(
            "SELECT id, signal, created, items, body FROM requests"
            f" WHERE id IN ({placeholders}) ORDER BY id",
            picked,
        ).fetchall()
        self._leased.update(picked)
        return [QueuedRequest(*row) for row in rows]

    def ack(self, requests: list[QueuedRequest]) -> None:
        """Deletes requests upstream has (or that were dropped by policy), in one statement."""
        if not requests:
            return
        ids = [request.id for request in requests]
        placeholders = ",".join("?" * len(ids))
        self._db.execute(f"DELETE FROM requests WHERE id IN ({placeholders})", ids)
        oldest_gone = False
        for request in requests:
            self._leased.discard(request.id)
            self._bytes -= len(request.body)
            oldest_gone |= request.created <= (self._oldest or 0.0)
        self._count -= len(requests)
        if self._count == 0:
            self._oldest = None
        elif oldest_gone:
            row = self._db.execute("SELECT MIN(created) FROM requests").fetchone()
            self._oldest = row[0]

    def close(self) -> None:
        self._db.close()
