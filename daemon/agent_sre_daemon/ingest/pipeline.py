"""The path every OTLP request takes after decoding: classify, observe, enrich, queue.

Receivers decode and hand a request here; the pipeline refuses it (a
:class:`~agent_sre_daemon.errors.ReceiverError`) or accepts it, in which case the request
is on disk in the durable queue (when forwarding is on) before this returns.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent_sre_daemon.errors import InvalidArgumentError, UnavailableError

if TYPE_CHECKING:
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

    def export_traces(
        self, request: ExportTraceServiceRequest, protocol: str, wire_size: int
    ) -> BatchResult:
        """Accepts a decoded trace request; returns how many spans were kept and rejected.

        Raises:
            UnavailableError: the queue is full or the daemon is stopping (retryable).
            InvalidArgumentError: every span of the request was malformed.
        """
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
        if result.accepted:
            if self.queue is not None:
                self._enqueue("traces", request.SerializeToString(), result.accepted)
            metrics.accepted_spans.labels(protocol).inc(result.accepted)
        return result

    def export_passthrough(
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
            self._enqueue(signal, body if body is not None else request.SerializeToString(), items)
        self.metrics.accepted_items.labels(protocol, signal).inc(items)

    def _check_room(self, protocol: str, signal: str, size: int) -> None:
        if not self.accepting:
            self.metrics.refused_requests.labels(protocol, signal, "stopping").inc()
            raise UnavailableError(
                "the daemon is shutting down; retry", retry_after=1.0, reason="stopping"
            )
        queue = self.queue
        if queue is not None and not queue.has_room(size):
            self.metrics.refused_requests.labels(protocol, signal, "queue_full").inc()
            raise UnavailableError(
                f"the upstream queue is full ({queue.size_bytes} bytes); retry later",
                retry_after=5.0,
            )

    def _enqueue(self, signal: str, body: bytes, items: int) -> None:
        assert self.queue is not None
        self.queue.put(signal, body, items, self.clock())
        self.on_queued()
