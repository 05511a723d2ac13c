"""The path every OTLP request takes after decoding: classify, observe, enrich, queue.

Receivers decode and hand a request here; the pipeline refuses it (a
:class:`~agent_sre_daemon.errors.ReceiverError`) or accepts it, in which case the request
is on disk in the durable queue (when forwarding is on) before the awaited call returns.
The disk write happens on the queue's writer thread: the event loop serves other requests
while one waits for its commit.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent_sre_daemon.errors import InvalidArgumentError, UnavailableError, storage_unavailable
from agent_sre_daemon.stores.errors import StorageError

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from agent_sre.tracing.batch import BatchResult, TraceBatchProcessor
    from agent_sre_daemon.metrics import PipelineMetrics
    from agent_sre_daemon.stores.queue import DurableQueue


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


class Pipeline:
    """Shared by the gRPC and HTTP receivers and the proxy (spans of proxied calls).

    Args:
        processor: the span pass (classification, enrichment, observers).
        queue: the durable queue, or None when no upstream is configured (then nothing is
            stored and nothing accumulates).
        metrics: the pipeline's Prometheus metrics.
        clock: wall clock (seconds); injected for tests.
    """

    def __init__(
        self,
        processor: TraceBatchProcessor,
        queue: DurableQueue | None,
        metrics: PipelineMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.processor = processor
        self.queue = queue
        self.metrics = metrics
        self.clock = clock
        self.accepting = True
        self.on_queued: Callable[[], None] = lambda: None
        """Called after a request is queued (wakes the exporter)."""

    async def export_traces(
        self, request: ExportTraceServiceRequest, protocol: str, wire_size: int
    ) -> BatchResult:
        """Accepts a decoded trace request; returns how many spans were kept and rejected,
        once they are on disk.

        Raises:
            UnavailableError: the queue is full, cannot be written (reason ``storage``), or
                the daemon is stopping (retryable).
            InvalidArgumentError: every span of the request was malformed.
        """
        result, body = self._process_traces(request, protocol, wire_size)
        if body is not None:
            try:
                await self._queue().put_async("traces", body, result.accepted, self.clock())
            except StorageError as exc:
                raise self._storage_refused(protocol, "traces", exc, result.accepted) from None
            self.on_queued()
        if result.accepted:
            self.metrics.accepted_spans.labels(protocol).inc(result.accepted)
        return result

    def export_traces_nowait(
        self, request: ExportTraceServiceRequest, protocol: str, wire_size: int
    ) -> BatchResult:
        """:meth:`export_traces` for spans nobody waits on (the proxy's own): the write is
        submitted, not awaited; a failed write is counted as a drop (``<protocol>_storage``).
        """
        result, body = self._process_traces(request, protocol, wire_size)
        if body is not None:
            future = self._queue().put_nowait("traces", body, result.accepted, self.clock())
            future.add_done_callback(self._count_lost(protocol, result.accepted))
            self.on_queued()
        if result.accepted:
            self.metrics.accepted_spans.labels(protocol).inc(result.accepted)
        return result

    def _process_traces(
        self, request: ExportTraceServiceRequest, protocol: str, wire_size: int
    ) -> tuple[BatchResult, bytes | None]:
        """Admission and the span pass; the bytes to queue (None: nothing to queue)."""
        try:
            self._check_room(protocol, "traces", wire_size)
        except UnavailableError as exc:
            self.metrics.refused_spans.labels(protocol, exc.reason).inc(count_spans(request))
            raise
        result = self.processor.process(request, self.clock())
        metrics = self.metrics
        if result.rejected:
            metrics.refused_spans.labels(protocol, "invalid").inc(result.rejected)
            if not result.accepted:
                raise InvalidArgumentError(result.error_message)
        for kind, count in result.by_kind.items():
            metrics.spans_by_kind.labels(kind.value).inc(count)
        if result.accepted and self.queue is not None:
            return result, request.SerializeToString()
        return result, None

    async def export_passthrough(
        self,
        signal: str,
        request: ExportMetricsServiceRequest | ExportLogsServiceRequest,
        body: bytes | None,
        protocol: str,
        items: int,
    ) -> None:
        """Accepts metrics or logs, forwarded unchanged (``body`` when given, else re-encoded)."""
        self._check_room(protocol, signal, len(body) if body is not None else 0)
        if self.queue is not None:
            data = body if body is not None else request.SerializeToString()
            try:
                await self.queue.put_async(signal, data, items, self.clock())
            except StorageError as exc:
                raise self._storage_refused(protocol, signal, exc, 0) from None
            self.on_queued()
        self.metrics.accepted_items.labels(protocol, signal).inc(items)

    def _check_room(self, protocol: str, signal: str, size: int) -> None:
        if not self.accepting:
            self.metrics.refused_requests.labels(protocol, signal, "stopping").inc()
            raise UnavailableError(
                "the daemon is shutting down; retry", retry_after=1.0, reason="stopping"
            )
        queue = self.queue
        if queue is None:
            return
        failure = queue.storage_error()
        if failure is not None:
            # The disk failed a moment ago: refuse before observing, so the client's retry
            # is the only time its spans are counted.
            self.metrics.refused_requests.labels(protocol, signal, "storage").inc()
            raise storage_unavailable(failure)
        if not queue.has_room(size):
            self.metrics.refused_requests.labels(protocol, signal, "queue_full").inc()
            raise UnavailableError(
                f"the upstream queue is full ({queue.size_bytes} bytes); retry later",
                retry_after=5.0,
            )

    def _queue(self) -> DurableQueue:
        assert self.queue is not None
        return self.queue

    def _storage_refused(
        self, protocol: str, signal: str, exc: StorageError, spans: int
    ) -> UnavailableError:
        self.metrics.refused_requests.labels(protocol, signal, "storage").inc()
        if spans:
            self.metrics.refused_spans.labels(protocol, "storage").inc(spans)
        return storage_unavailable(exc)

    def _count_lost(
        self, protocol: str, spans: int
    ) -> Callable[[concurrent.futures.Future[int]], None]:
        def done(future: concurrent.futures.Future[int]) -> None:
            if not future.cancelled() and future.exception() is not None:
                self.metrics.dropped_items.labels("traces", f"{protocol}_storage").inc(spans)

        return done
