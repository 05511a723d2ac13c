"""The durable queue: byte accounting, batching by signal, persistence across reopen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre_daemon.stores.queue import DurableQueue

if TYPE_CHECKING:
    from pathlib import Path


def test_put_lease_ack_and_reopen(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.db", max_bytes=100)
    queue.put("traces", b"a" * 10, 1, now=1.0)
    queue.put("traces", b"b" * 20, 2, now=2.0)
    queue.put("logs", b"c" * 30, 3, now=3.0)
    assert (len(queue), queue.size_bytes, queue.oldest_created()) == (3, 60, 1.0)

    first = queue.lease_batch(max_bytes=1000)
    assert [r.body[:1] for r in first] == [b"a", b"b"]  # one signal per batch
    assert queue.lease_batch(max_bytes=1000)[0].signal == "logs"
    assert queue.lease_batch(max_bytes=1000) == []  # everything in flight
    queue.ack(first)
    assert (len(queue), queue.size_bytes, queue.oldest_created()) == (1, 30, 3.0)
    queue.close()

    reopened = DurableQueue(tmp_path / "q.db", max_bytes=100)
    assert (len(reopened), reopened.size_bytes) == (1, 30)
    leased = reopened.lease_batch(max_bytes=1000)  # leases do not survive a restart
    assert [(r.signal, r.items) for r in leased] == [("logs", 3)]


def test_batch_respects_byte_cap_but_takes_one_oversized(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.db", max_bytes=10_000)
    for size in (400, 400, 400):
        queue.put("traces", bytes(size), 1, now=0.0)
    assert len(queue.lease_batch(max_bytes=900)) == 2
    assert len(queue.lease_batch(max_bytes=100)) == 1


def test_room(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.db", max_bytes=100)
    assert queue.has_room(1000)  # an empty queue takes anything once
    queue.put("traces", bytes(80), 1, now=0.0)
    assert queue.has_room(20) and not queue.has_room(21)
