"""Incidents, the notification outbox and the throttles automatic responses put on agents,
in SQLite under ``state_dir``, written off the event loop by one thread of their own."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from agent_sre.incidents.model import Incident
from agent_sre.incidents.throttles import PutBy
from agent_sre_daemon.stores.errors import StorageError

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
CREATE TABLE IF NOT EXISTS throttles (agent_id TEXT PRIMARY KEY,
                                      requests_per_minute REAL NOT NULL, until REAL NOT NULL);
"""
THROTTLE_COLUMNS = {
    "since": "REAL NOT NULL DEFAULT 0",
    "rule": "TEXT NOT NULL DEFAULT ''",
    "incident": "TEXT NOT NULL DEFAULT ''",
    "operator": "TEXT NOT NULL DEFAULT ''",
}
"""Columns added to ``throttles`` after its first release (added to an older file at open;
its rows read as put on at 0 by nobody known)."""


@dataclass(frozen=True)
class Pending:
    """A notification waiting for delivery."""

    id: int
    receiver: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class KeptThrottle:
    """A throttle put on an agent (by ``throttle_agent`` or by hand) at ``since``, until
    ``until`` (the node's clock), by ``by``."""

    agent_id: str
    requests_per_minute: float
    until: float
    since: float = 0.0
    by: PutBy = field(default_factory=PutBy)

    def to_dict(self, now: float) -> dict[str, Any]:
        """As ``GET /v1/throttles`` shows it (``left_seconds`` from ``now``)."""
        return {
            "agent_id": self.agent_id,
            "requests_per_minute": self.requests_per_minute,
            "since": self.since or None,
            "until": self.until,
            "left_seconds": max(0.0, self.until - now),
            "by": self.by.describe(),
            **self.by.to_dict(),
        }


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
        have = {row[1] for row in db.execute("PRAGMA table_info(throttles)")}
        for column, kind in THROTTLE_COLUMNS.items():
            if column not in have:
                db.execute(f"ALTER TABLE throttles ADD COLUMN {column} {kind}")
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

    # -- throttles ------------------------------------------------------------------------

    async def throttles(self, now: float) -> list[KeptThrottle]:
        """The throttles still in force at ``now``; lapsed ones are deleted."""
        return await self._run(self._throttles, now)

    def _throttles(self, now: float) -> list[KeptThrottle]:
        with self.db:
            self.db.execute("DELETE FROM throttles WHERE until <= ?", (now,))
        rows = self.db.execute(
            "SELECT agent_id, requests_per_minute, until, since, rule, incident, operator "
            "FROM throttles ORDER BY agent_id"
        ).fetchall()
        return [
            KeptThrottle(
                str(r[0]),
                float(r[1]),
                float(r[2]),
                float(r[3]),
                PutBy(str(r[4]), str(r[5]), str(r[6])),
            )
            for r in rows
        ]

    async def keep_throttle(self, throttle: KeptThrottle, now: float) -> None:
        """Writes ``throttle`` (replacing the agent's last one), dropping lapsed ones.

        Raises:
            StorageError: the database could not be written.
        """
        await self._write(
            ("DELETE FROM throttles WHERE until <= ?", (now,)),
            (
                "INSERT OR REPLACE INTO throttles (agent_id, requests_per_minute, until, "
                "since, rule, incident, operator) VALUES (?,?,?,?,?,?,?)",
                (
                    throttle.agent_id,
                    throttle.requests_per_minute,
                    throttle.until,
                    throttle.since,
                    throttle.by.rule,
                    throttle.by.incident,
                    throttle.by.operator,
                ),
            ),
        )

    async def drop_throttle(self, agent_id: str) -> None:
        """Raises: StorageError: the database could not be written."""
        await self._write(("DELETE FROM throttles WHERE agent_id = ?", (agent_id,)))

    async def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        try:
            await self._run(self._exec_all, statements)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {type(exc).__name__}: {exc}") from None

    def _exec_all(self, statements: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
        with self.db:  # one transaction: committed on the way out, rolled back on an error
            self.db.execute("BEGIN")
            for sql, args in statements:
                self.db.execute(sql, args)

    def _exec(self, sql: str, args: tuple[Any, ...]) -> None:
        with self.db:
            self.db.execute(sql, args)
