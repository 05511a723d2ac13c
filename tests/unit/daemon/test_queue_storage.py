"""The queue's writer thread: group commits, a loop that never waits on the disk, storage
errors that leave the queue consistent, and a damaged file moved aside."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.stores.errors import StorageError
from agent_sre_daemon.stores.queue import STORAGE_COOLDOWN, DurableQueue

if TYPE_CHECKING:
    from pathlib import Path


def test_puts_arriving_together_are_one_commit(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.db", max_bytes=1 << 30)
    gate = queue._writer.submit(lambda db: time.sleep(0.2))  # the disk is busy
    futures = [queue.put_nowait("traces", b"x" * 100, 1, now=1.0) for _ in range(100)]
    gate.result()
    ids = [future.result(timeout=5) for future in futures]
    assert ids == sorted(ids) and len(set(ids)) == 100
    assert queue._writer.commits == 1
    assert (len(queue), queue.size_bytes) == (100, 10_000)
    queue.close()


def test_the_event_loop_runs_while_a_put_waits_for_a_slow_disk(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.db", max_bytes=1 << 30, fsync=True)

    async def main() -> tuple[int, int]:
        queue._writer.submit(lambda db: time.sleep(0.5))  # a disk stalled for 500 ms
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        request_id = await queue.put_async("traces", b"body", 1, now=1.0)
        task.cancel()
        return request_id, ticks

    request_id, ticks = asyncio.run(main())
    assert request_id == 1
    assert ticks >= 20  # the loop kept serving for most of the 500 ms
    queue.close()
    assert len(DurableQueue(tmp_path / "q.db", max_bytes=1 << 30)) == 1  # on disk


def test_a_full_database_refuses_then_recovers(tmp_path: Path) -> None:
    clock = ManualClock()
    queue = DurableQueue(tmp_path / "q.db", max_bytes=1 << 30, clock=clock)
    queue.put("traces", b"a" * 100, 1, now=1.0)
    pages = queue._writer.run(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
    queue._writer.run(lambda db: db.execute(f"PRAGMA max_page_count = {pages}"))

    with pytest.raises(StorageError, match="SQLITE_FULL"):
        queue.put("traces", b"b" * 50_000, 1, now=2.0)
    assert (len(queue), queue.size_bytes) == (1, 100)  # the failed put is not counted
    assert queue.storage_error() is not None  # receivers refuse for a moment
    clock.advance(STORAGE_COOLDOWN)
    assert queue.storage_error() is None  # then let a request through to try again

    async def failing_put() -> None:
        await queue.put_async("traces", b"c" * 50_000, 1, now=3.0)

    with pytest.raises(StorageError):
        asyncio.run(failing_put())

    queue._writer.run(lambda db: db.execute("PRAGMA max_page_count = 1000000"))  # space again
    queue.put("traces", b"d" * 50_000, 1, now=4.0)
    batch = queue.lease_batch(1 << 20)
    assert [r.body[:1] for r in batch] == [b"a", b"d"]
    queue.ack(batch)
    assert (len(queue), queue.size_bytes, queue.oldest_created()) == (0, 0, None)
    queue.close()


def test_a_failed_ack_keeps_the_requests_leased(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.db", max_bytes=1 << 30)
    queue.put("traces", b"a" * 10, 1, now=1.0)
    batch = queue.lease_batch(1 << 20)
    queue._writer.run(lambda db: db.execute("PRAGMA query_only = 1"))  # writes fail
    with pytest.raises(StorageError):
        queue.ack(batch)
    assert queue.lease_batch(1 << 20) == []  # not handed out twice
    queue._writer.run(lambda db: db.execute("PRAGMA query_only = 0"))
    queue.ack(batch)
    assert len(queue) == 0
    queue.close()


def test_a_garbage_queue_file_is_moved_aside_and_the_queue_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "queue.db"
    garbage = b"this is not a database" * 1000
    path.write_bytes(garbage)
    queue = DurableQueue(path, max_bytes=1 << 20, clock=ManualClock(1_764_115_200.0))
    assert len(queue) == 0
    kept = tmp_path / "queue.db.corrupt-20251126T000000Z"
    assert kept.read_bytes() == garbage
    assert str(kept) in caplog.text and "requests waiting to be sent upstream" in caplog.text
    queue.put("traces", b"x", 1, now=1.0)
    queue.close()
    assert len(DurableQueue(path, max_bytes=1 << 20)) == 1
