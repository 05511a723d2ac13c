"""The embedded budget ledger: the in-memory :class:`BudgetLedger` persisted in SQLite.

The in-memory ledger answers every reserve/settle synchronously on the event loop (so racing
calls cannot overspend); settled spend is written behind, within ``flush_delay`` seconds,
and on close. Restarting loads every counter back: a restart never resets spend. A crash
loses at most the last ``flush_delay`` seconds of settled spend; reservations in flight are
not persisted (their calls were never settled).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from agent_sre.cost.ledger import BudgetLedger, Charge, Refusal, Reservation
from agent_sre_daemon.stores.ledger import CounterView

if TYPE_CHECKING:
    from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    counter TEXT NOT NULL, bucket INTEGER NOT NULL, spent_usd REAL NOT NULL,
    PRIMARY KEY (counter, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocked (agent_id TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


class SqliteLedgerStore:
    """Budget ledger in ``<state_dir>/ledger.sqlite``."""

    def __init__(self, path: Path, flush_delay: float = 0.2) -> None:
        self.path = path
        self.ledger = BudgetLedger()
        self._flush_delay = flush_delay
        self._db: sqlite3.Connection | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._blocked: dict[str, str] = {}

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        for counter, bucket, spent in db.execute("SELECT counter, bucket, spent_usd FROM spend"):
            self.ledger.load(counter, bucket, spent)
        self._blocked = dict(db.execute("SELECT agent_id, reason FROM blocked").fetchall())
        self._db = db

    async def reserve(
        self, charges: tuple[Charge, ...], amount_usd: float
    ) -> Reservation | Refusal:
        return self.ledger.reserve(charges, amount_usd)

    async def settle(self, reservation: Reservation, actual_usd: float) -> list[float]:
        self.ledger.settle(reservation, actual_usd)
        self._schedule_flush()
        return [self.ledger.window_total(charge)[0] for charge in reservation.charges]

    async def used(self, charges: tuple[Charge, ...]) -> list[float]:
        return [sum(self.ledger.window_total(charge)) for charge in charges]

    async def counters(self) -> list[CounterView]:
        return [
            CounterView(key.split("|", 1)[0], key.split("|", 1)[1], bucket, spent)
            for key in self.ledger.counters()
            for bucket, spent in self.ledger.buckets(key)
        ]

    async def prune(self, oldest: dict[str, int]) -> None:
        self.flush()
        self.ledger.prune(oldest)
        db = self._require()
        with db:
            db.execute("BEGIN")
            for budget, bucket in oldest.items():
                db.execute(
                    "DELETE FROM spend WHERE counter >= ? AND counter < ? AND bucket < ?",
                    (budget + "|", budget + "}", bucket),
                )

    async def get_blocked(self) -> dict[str, str]:
        return dict(self._blocked)

    async def set_blocked(self, agent_id: str, reason: str | None) -> None:
        db = self._require()
        if reason is None:
            self._blocked.pop(agent_id, None)
            db.execute("DELETE FROM blocked WHERE agent_id = ?", (agent_id,))
        else:
            self._blocked[agent_id] = reason
            db.execute(
                "INSERT OR REPLACE INTO blocked (agent_id, reason) VALUES (?, ?)",
                (agent_id, reason),
            )

    def flush(self) -> None:
        """Writes every counter changed since the last flush."""
        self._flush_handle = None
        rows = self.ledger.take_dirty()
        if rows and self._db is not None:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO spend (counter, bucket, spent_usd) VALUES (?, ?, ?)",
                    rows,
                )

    async def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self._flush_delay, self.flush)

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("ledger store is not open")
        return self._db
