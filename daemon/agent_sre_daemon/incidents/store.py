"""Incidents and the notification outbox in SQLite under ``state_dir``, written off the
event loop by one thread of their own."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent_sre.incidents.model import Incident

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY, open INTEGER, opened_at REAL,
                                      data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL,
                                   body BLOB NOT NULL, created_at REAL NOT NULL,
                                   attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL,
                                   last_error TEXT NOT NULL DEFAULT '');
"""


@dataclass(frozen=True)
class Pending:
    """A notification waiting for delivery."""

    id: int
    receiver: str
    body: bytes
    attempts: int


class IncidentStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incidents-store")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def open(self) -> list[Incident]:
        """Opens (creating) the database; returns the incidents it holds."""
        return await self._run(self._open)

    def _open(self) -> list[Incident]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        self._db = db
        rows = db.execute("SELECT data FROM incidents ORDER BY opened_at").fetchall()
        return [Incident.from_dict(json.loads(row[0])) for row in rows]

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "store not open"
        return self._db

    async def save(self, incidents: list[dict[str, Any]]) -> None:
        await self._run(self._save, incidents)

    def _save(self, incidents: list[dict[str, Any]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO incidents (id, open, opened_at, data) VALUES (?,?,?,?)",
                [
                    (i["id"], int(i["state"] != "resolved"), i["opened_at"], json.dumps(i))
                    for i in incidents
                ],
            )

    async def enqueue(self, items: list[tuple[str, bytes]], now: float) -> None:
        await self._run(self._enqueue, items, now)

    def _enqueue(self, items: list[tuple[str, bytes]], now: float) -> None:
        with self.db:
            self.db.executemany(
                "INSERT INTO outbox (receiver, body, created_at, due_at) VALUES (?,?,?,?)",
                [(receiver, body, now, now) for receiver, body in items],
            )

    async def due(self, now: float, limit: int = 100) -> list[Pending]:
        return await self._run(self._due, now, limit)

    def _due(self, now: float, limit: int) -> list[Pending]:
        rows = self.db.execute(
            # a receiver whose oldest notification waits holds back its newer ones (order
            # matters: a re-sent "firing" must never overtake a "resolved")
            "SELECT id, receiver, body, attempts FROM outbox WHERE receiver NOT IN "
            "(SELECT receiver FROM outbox WHERE due_at > ?) ORDER BY id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [Pending(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def delivered(self, item_id: int) -> None:
        await self._run(self._exec, "DELETE FROM outbox WHERE id = ?", (item_id,))

    async def postpone(self, item_id: int, due_at: float, error: str) -> None:
        await self._run(
            self._exec,
            "UPDATE outbox SET attempts = attempts + 1, due_at = ?, last_error = ? WHERE id = ?",
            (due_at, error[:500], item_id),
        )

    async def pending(self) -> int:
        return await self._run(lambda: int(self.db.execute("SELECT COUNT(*) FROM outbox")
                                           .fetchone()[0]))  # fmt: skip

    def _exec(self, sql: str, args: tuple[Any, ...]) -> None:
        with self.db:
            self.db.execute(sql, args)
