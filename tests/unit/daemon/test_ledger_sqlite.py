"""The SQLite ledger: written behind on its writer thread, bounded on disk like in memory,
surviving a failed write, and starting past a damaged file."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from agent_sre.cost.ledger import Charge, Reservation
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.stores.ledger_sqlite import SqliteLedgerStore

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def task_charge(task: str) -> Charge:
    return Charge("per-task", task, 0, 1, 1.0, True)


async def spend(store: SqliteLedgerStore, task: str, usd: float) -> None:
    reservation = await store.reserve((task_charge(task),), usd)
    assert isinstance(reservation, Reservation)
    await store.settle(reservation, usd)


def rows(path: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT counter, spent_usd FROM spend ORDER BY counter").fetchall()


def test_evicted_counters_leave_the_file_too(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    evicted: list[object] = []

    async def main() -> None:
        store = SqliteLedgerStore(path, flush_delay=0.01, on_evict=lambda n, k: evicted.append(k))
        await store.open()
        store.ledger._counters.cap = 3  # a small cap for the test
        for i in range(5):
            await spend(store, f"t{i}", 0.1)
        await store.close()

    asyncio.run(main())
    assert evicted == ["per-task|t0", "per-task|t1"]
    assert rows(path) == [("per-task|t2", 0.1), ("per-task|t3", 0.1), ("per-task|t4", 0.1)]


def test_a_failed_write_is_reported_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    errors: list[str] = []

    async def main() -> None:
        store = SqliteLedgerStore(path, flush_delay=0.01)
        store.on_error = errors.append
        await store.open()
        writer = store._require()
        await writer.call(lambda db: db.execute("PRAGMA query_only = 1"))  # the disk refuses
        await spend(store, "t1", 0.25)
        store.flush()
        await asyncio.sleep(0.1)
        assert errors and "sqlite ledger" in errors[0]
        assert rows(path) == []
        await writer.call(lambda db: db.execute("PRAGMA query_only = 0"))  # and recovers
        await asyncio.sleep(0.1)  # the retry flush
        assert rows(path) == [("per-task|t1", 0.25)]
        await store.close()

    asyncio.run(main())


def test_a_garbage_ledger_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"\x00garbage" * 4096)

    async def main() -> None:
        store = SqliteLedgerStore(path, clock=ManualClock(1_764_115_200.0))
        await store.open()
        assert await store.counters() == []
        await spend(store, "t1", 0.5)
        await store.close()

    asyncio.run(main())
    assert (tmp_path / "ledger.sqlite.corrupt-20251126T000000Z").exists()
    assert "budgets restart from zero" in caplog.text
    assert rows(path) == [("per-task|t1", 0.5)]
