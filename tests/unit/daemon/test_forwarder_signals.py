"""The forwarder publishes export trouble as signals: one ``export_failed`` while upstream
fails (resolved when it recovers, not one per retry) and ``items_dropped`` per drop; and it
survives a queue whose disk fails."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from prometheus_client import CollectorRegistry

from agent_sre.config import OtlpExporterConfig
from agent_sre.signals import Signal, SignalState
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.exporters.otlp import OtlpForwarder
from agent_sre_daemon.metrics import PipelineMetrics
from agent_sre_daemon.stores.queue import DurableQueue
from tests.support.spans import make_request
from tests.support.upstream import RecordingUpstream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path


def forwarder(
    tmp_path: Path, upstream: RecordingUpstream, signals: list[Signal], **retry: object
) -> OtlpForwarder:
    config = OtlpExporterConfig.model_validate(
        {
            "endpoint": upstream.endpoint,
            "max_in_flight": 1,
            "batch": {"timeout": 0},
            "retry": {"initial_interval": 0.02, "max_interval": 0.05, **retry},
        }
    )
    queue = DurableQueue(tmp_path / "q.db", 1 << 30)
    return OtlpForwarder(
        config,
        queue,
        PipelineMetrics(CollectorRegistry()),
        clock=ManualClock(1_700_000_000.0),
        on_signal=signals.append,
    )


def drain(
    exporter: OtlpForwarder,
    upstream: RecordingUpstream,
    body: bytes,
    items: int,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Queues ``body`` and runs the forwarder (and ``meanwhile``) until its queue is empty
    (sent or dropped), then stops it and the upstream."""

    async def main() -> None:
        exporter.start()
        await exporter.queue.put_async("traces", body, items, now=1.0)
        exporter.wake()
        if meanwhile is not None:
            await meanwhile()
        await until(lambda: len(exporter.queue) == 0)
        await exporter.stop()

    try:
        asyncio.run(main())
    finally:
        upstream.stop()
        exporter.queue.close()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_export_failed_fires_once_and_resolves(tmp_path: Path) -> None:
    upstream = RecordingUpstream().start()
    upstream.fail_with = grpc.StatusCode.UNAVAILABLE
    signals: list[Signal] = []
    exporter = forwarder(tmp_path, upstream, signals)

    async def recover() -> None:
        await until(lambda: upstream.calls >= 5)  # several retries
        upstream.fail_with = None

    drain(exporter, upstream, make_request(3).SerializeToString(), 3, recover)
    assert [(s.type, s.state) for s in signals] == [
        ("export_failed", SignalState.FIRING),
        ("export_failed", SignalState.RESOLVED),
    ]
    assert all(s.source == "exporter" and s.at == 1_700_000_000.0 for s in signals)
    assert signals[0].key == signals[1].key  # the resolution closes the same signal
    assert len(upstream.traces) == 1


def test_items_dropped_after_max_elapsed(tmp_path: Path) -> None:
    upstream = RecordingUpstream().start()
    upstream.fail_with = grpc.StatusCode.UNAVAILABLE
    signals: list[Signal] = []
    exporter = forwarder(tmp_path, upstream, signals, max_elapsed=0.2)
    drain(exporter, upstream, make_request(4).SerializeToString(), 4)
    dropped = [s for s in signals if s.type == "items_dropped"]
    assert len(dropped) == 1
    assert dropped[0].value == 4.0
    assert dropped[0].labels["reason"] == "retries_exhausted"
    assert [s.type for s in signals].count("export_failed") == 1


def test_senders_survive_a_queue_that_cannot_be_read_or_written(tmp_path: Path) -> None:
    upstream = RecordingUpstream().start()
    signals: list[Signal] = []
    exporter = forwarder(tmp_path, upstream, signals)
    queue = exporter.queue
    body = make_request(2).SerializeToString()

    async def main() -> None:
        await queue.put_async("traces", body, 2, now=1.0)
        await queue._writer.call(lambda db: db.execute("PRAGMA query_only = 1"))  # acks fail
        exporter.start()
        exporter.wake()
        await until(lambda: upstream.calls >= 1)
        await asyncio.sleep(0.6)  # an ack or two failed meanwhile
        assert len(queue) == 1 and upstream.calls == 1  # leased: not sent twice
        await queue._writer.call(lambda db: db.execute("PRAGMA query_only = 0"))  # disk back
        await until(lambda: len(queue) == 0)
        await queue.put_async("traces", body, 2, now=2.0)
        exporter.wake()
        await until(lambda: upstream.calls == 2 and len(queue) == 0)  # still forwarding
        await exporter.stop()

    try:
        asyncio.run(main())
    finally:
        upstream.stop()
        queue.close()
