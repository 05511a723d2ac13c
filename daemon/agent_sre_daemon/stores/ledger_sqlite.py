"""The embedded budget ledger: the in-memory :class:`BudgetLedger` persisted in SQLite.

The in-memory ledger answers every reserve/settle synchronously on the event loop (so racing
calls cannot overspend); settled spend is written behind, within ``flush_delay`` seconds,
and on close, by the file's writer thread (the loop never waits on the disk). Restarting
loads every counter back: a restart never resets spend. A crash loses at most the last
``flush_delay`` seconds of settled spend; reservations in flight are not persisted (their
calls were never settled). A failed write (disk full) is reported to ``on_error`` and
retried with the next flush. Counters evicted for the ledger's cap are deleted from the file
too, so the file is bounded like the memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent_sre.cost.ledger import BudgetLedger, Charge, Refusal, Reservation
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.stores.errors import StorageError
from agent_sre_daemon.stores.ledger import CounterView
from agent_sre_daemon.stores.sqlite import open_database
from agent_sre_daemon.stores.writer import SqliteWriter

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from pathlib import Path

    from agent_sre.bounded import OnEvict
    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.stores.ledger")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    counter TEXT NOT NULL, bucket INTEGER NOT NULL, spent_usd REAL NOT NULL,
    PRIMARY KEY (counter, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocked (agent_id TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


class SqliteLedgerStore:
    """Budget ledger in ``<state_dir>/ledger.sqlite``."""

    def __init__(
        self,
        path: Path,
        flush_delay: float = 0.2,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_evict: OnEvict | None = None,
    ) -> None:
        self.path = path
        self.clock = clock
        self.ledger = BudgetLedger(on_evict)
        self.on_error: Callable[[str], None] | None = None
        self._flush_delay = flush_delay
        self._writer: SqliteWriter | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._blocked: dict[str, str] = {}

    async def open(self) -> None:
        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self.ledger = BudgetLedger(self.ledger._on_evict)
            for counter, bucket, spent in db.execute(
                "SELECT counter, bucket, spent_usd FROM spend"
            ):
                self.ledger.load(counter, bucket, spent)
            self._blocked = dict(db.execute("SELECT agent_id, reason FROM blocked").fetchall())

        db = await asyncio.to_thread(
            open_database,
            self.path,
            setup,
            clock=self.clock,
            lost="budget spend recorded in it (budgets restart from zero) and operator blocks",
        )
        self._writer = SqliteWriter(db, self.path)

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

        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                for budget, bucket in oldest.items():
                    db.execute(
                        "DELETE FROM spend WHERE counter >= ? AND counter < ? AND bucket < ?",
                        (budget + "|", budget + "}", bucket),
                    )

        # Not awaited: pruning rides on a settle; a failure is reported and redone next time.
        asyncio.wrap_future(self._require().submit(delete)).add_done_callback(self._report)

    async def get_blocked(self) -> dict[str, str]:
        return dict(self._blocked)

    async def set_blocked(self, agent_id: str, reason: str | None) -> None:
        writer = self._require()
        if reason is None:
            self._blocked.pop(agent_id, None)
            await writer.call(
                lambda db: db.execute("DELETE FROM blocked WHERE agent_id = ?", (agent_id,))
            )
        else:
            self._blocked[agent_id] = reason
            await writer.call(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO blocked (agent_id, reason) VALUES (?, ?)",
                    (agent_id, reason),
                )
            )

    def flush(self) -> None:
        """Submits every counter changed since the last flush (and deletes evicted ones) to
        the writer thread; a failed write marks the rows for the next flush."""
        self._flush_handle = None
        if self._writer is None:
            return
        evicted = self.ledger.take_evicted()
        rows = self.ledger.take_dirty()
        if not rows and not evicted:
            return

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                # deletes first: a counter evicted and then used again is in ``rows``
                db.executemany("DELETE FROM spend WHERE counter = ?", [(k,) for k in evicted])
                db.executemany(
                    "INSERT OR REPLACE INTO spend (counter, bucket, spent_usd) VALUES (?, ?, ?)",
                    rows,
                )

        def done(future: asyncio.Future[None]) -> None:  # on the loop
            if self._report(future):
                self.ledger.mark_dirty(rows)
                self._schedule_flush()

        asyncio.wrap_future(self._writer.submit(write)).add_done_callback(done)

    async def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.close)

    def _report(self, future: asyncio.Future[None]) -> bool:
        """Reports a failed write (on the loop); True when it failed."""
        exc = None if future.cancelled() else future.exception()
        if exc is None:
            return False
        log.error("ledger write failed (retried with the next flush): %s", exc)
        if self.on_error is not None and isinstance(exc, StorageError):
            try:
                self.on_error(f"sqlite ledger: {exc}")
            except Exception:
                log.exception("ledger on_error failed")
        return True

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self._flush_delay, self.flush)

    def _require(self) -> SqliteWriter:
        if self._writer is None:
            raise RuntimeError("ledger store is not open")
        return self._writer
