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
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.stores import aside
from agent_sre_daemon.stores.errors import StorageError
from agent_sre_daemon.stores.sqlite import open_database

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from agent_sre_daemon.clock import Clock

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY, open INTEGER, opened_at REAL,
                                      data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL,
                                   body BLOB NOT NULL, created_at REAL NOT NULL,
                                   attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL,
                                   last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_by_receiver ON outbox (receiver, id);
CREATE TABLE IF NOT EXISTS throttles (agent_id TEXT PRIMARY KEY,
                                      requests_per_minute REAL NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT,
                                         receiver TEXT NOT NULL, body BLOB NOT NULL,
                                         created_at REAL NOT NULL, dead_at REAL NOT NULL,
                                         attempts INTEGER NOT NULL, reason TEXT NOT NULL,
                                         error TEXT NOT NULL);
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
    """A notification waiting for delivery (``attempts``: rounds it failed so far)."""

    id: int
    receiver: str
    body: bytes
    attempts: int
    created_at: float = 0.0


@dataclass(frozen=True)
class DeadLetter:
    """A notification given up on: when, why (``refused``, ``redirect``, ``gave_up``,
    ``receiver_gone``) and the last error."""

    id: int
    receiver: str
    body: bytes
    created_at: float
    dead_at: float
    attempts: int
    reason: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        """As ``GET /v1/notifications/dead`` shows it (the payload decoded when it is JSON;
        secrets such as a PagerDuty routing key are added when sending, never stored)."""
        try:
            body: Any = json.loads(self.body)
        except ValueError:
            body = self.body.decode("utf-8", "replace")
        return {
            "id": self.id,
            "receiver": self.receiver,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "dead_at": self.dead_at,
            "body": body,
        }


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
    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incidents-store")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def open(self) -> list[Incident]:
        """Opens (creating) the database; returns the incidents it holds."""
        return await self._run(self._open)

    def _open(self) -> list[Incident]:
        rows: list[tuple[str, str]] = []

        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(throttles)")}
            for column, kind in THROTTLE_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE throttles ADD COLUMN {column} {kind}")
            # every table read once with the columns this release uses (another schema
            # fails here, and the file is set aside)
            db.execute("SELECT id, receiver, body, created_at, attempts, due_at, last_error "
                       "FROM outbox LIMIT 1").fetchall()  # fmt: skip
            db.execute("SELECT id, receiver, body, created_at, dead_at, attempts, reason, "
                       "error FROM dead_letters LIMIT 1").fetchall()  # fmt: skip
            db.execute("SELECT agent_id, requests_per_minute, until, since, rule, incident, "
                       "operator FROM throttles LIMIT 1").fetchall()  # fmt: skip
            rows[:] = db.execute("SELECT id, data FROM incidents ORDER BY opened_at").fetchall()

        self._db = open_database(
            self.path,
            setup,
            clock=self.clock,
            lost="incidents, notifications waiting and throttles",
        )
        incidents = []
        for incident_id, data in rows:
            try:
                incidents.append(Incident.from_dict(json.loads(data)))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                self._set_aside_row(str(incident_id), data, f"{type(exc).__name__}: {exc}")
        return incidents

    def _set_aside_row(self, incident_id: str, data: str, reason: str) -> None:
        """An incident this release cannot read: kept next to the file, then deleted."""
        what = f"incident {incident_id}"
        try:
            kept = aside.keep_item(self.path, "set-aside", incident_id, data, self.clock)
        except OSError as exc:
            aside.report(self.path.name, what, f"{reason}; could not be kept: {exc}")
            return
        aside.report(self.path.name, what, reason, kept)
        with self.db:
            self.db.execute("DELETE FROM incidents WHERE id = ?", (incident_id,))

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

    async def due(self, receiver: str, now: float, limit: int = 100) -> list[Pending]:
        """``receiver``'s notifications, oldest first, unless one of them waits for a later
        round: then none (order matters: a re-sent "firing" must never overtake a
        "resolved")."""
        return await self._run(self._due, receiver, now, limit)

    def _due(self, receiver: str, now: float, limit: int) -> list[Pending]:
        rows = self.db.execute(
            "SELECT id, receiver, body, attempts, created_at FROM outbox WHERE receiver = ? "
            "AND NOT EXISTS (SELECT 1 FROM outbox WHERE receiver = ? AND due_at > ?) "
            "ORDER BY id LIMIT ?",
            (receiver, receiver, now, limit),
        ).fetchall()
        return [Pending(r[0], r[1], bytes(r[2]), r[3], float(r[4])) for r in rows]

    async def receivers(self) -> set[str]:
        """The receivers the outbox holds notifications for."""
        return await self._run(
            lambda: {str(r[0]) for r in self.db.execute("SELECT DISTINCT receiver FROM outbox")}
        )

    # -- the dead letter ------------------------------------------------------------------

    async def bury(
        self, item: Pending, reason: str, error: str, now: float, keep: int, rounds: int = 1
    ) -> int:
        """Moves ``item`` from the outbox to the dead letter (``rounds``: the rounds it
        failed in all), which keeps the newest ``keep``; returns how many it holds."""
        return await self._run(self._bury, [item.id], reason, error, now, keep, rounds)

    async def bury_receiver(self, receiver: str, reason: str, error: str, now: float,
                            keep: int) -> tuple[int, int]:  # fmt: skip
        """Moves every notification for ``receiver`` to the dead letter; returns how many,
        and how many the dead letter holds."""
        ids = await self._run(
            lambda: [r[0] for r in self.db.execute(
                "SELECT id FROM outbox WHERE receiver = ? ORDER BY id", (receiver,))]
        )  # fmt: skip
        held = await self._run(self._bury, ids, reason, error, now, keep, 0)
        return len(ids), held

    def _bury(
        self, ids: list[int], reason: str, error: str, now: float, keep: int, rounds: int
    ) -> int:
        with self.db:
            self.db.execute("BEGIN")
            for item_id in ids:
                self.db.execute(
                    "INSERT INTO dead_letters (receiver, body, created_at, dead_at, attempts, "
                    "reason, error) SELECT receiver, body, created_at, ?, attempts + ?, ?, ? "
                    "FROM outbox WHERE id = ?",
                    (now, rounds, reason, error[:500], item_id),
                )
                self.db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
            self.db.execute(
                "DELETE FROM dead_letters WHERE id <= "
                "(SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (keep,),
            )
        return self._dead_count()

    async def dead_letters(self, receiver: str | None = None) -> list[DeadLetter]:
        """What the dead letter holds, newest first (of ``receiver``, when given)."""
        return await self._run(self._dead_letters, receiver)

    def _dead_letters(self, receiver: str | None) -> list[DeadLetter]:
        sql = (
            "SELECT id, receiver, body, created_at, dead_at, attempts, reason, error "
            "FROM dead_letters"
        )
        args: tuple[Any, ...] = ()
        if receiver is not None:
            sql, args = sql + " WHERE receiver = ?", (receiver,)
        rows = self.db.execute(sql + " ORDER BY id DESC", args).fetchall()
        return [
            DeadLetter(
                r[0],
                str(r[1]),
                bytes(r[2]),
                float(r[3]),
                float(r[4]),
                int(r[5]),
                str(r[6]),
                str(r[7]),
            )  # fmt: skip
            for r in rows
        ]

    async def dead_count(self) -> int:
        return await self._run(self._dead_count)

    def _dead_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

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
        return self._throttles_in(self.db, now)

    @staticmethod
    def _throttles_in(db: sqlite3.Connection, now: float) -> list[KeptThrottle]:
        rows = db.execute(
            "SELECT agent_id, requests_per_minute, until, since, rule, incident, operator "
            "FROM throttles WHERE until > ? ORDER BY agent_id",
            (now,),
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
