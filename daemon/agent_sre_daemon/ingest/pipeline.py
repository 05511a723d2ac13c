"""The path every OTLP request takes after decoding: classify, observe, enrich, queue.

Receivers decode and hand a request here; the pipeline refuses it (a
:class:`~agent_sre_daemon.errors.ReceiverError`) or accepts it, in which case the request
is on disk in the durable queue (when forwarding is on) before the awaited call returns.
The disk write happens on the queue's writer thread: the event loop serves other requests
while one waits for its commit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from agent_sre.cost.pricing import Pricer
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
from agent_sre.tracing import conventions as c
from agent_sre.tracing.batch import NATIVE, TraceBatchProcessor
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AttrValue
from agent_sre_daemon.component import Component, Prepared, SpanObserverSpec, SpanTapSpec
from agent_sre_daemon.errors import (
    InvalidArgumentError,
    ReceiverError,
    UnavailableError,
    storage_unavailable,
)
from agent_sre_daemon.metrics import (
    MAX_MODEL_LABELS,
    MAX_ROLE_LABELS,
    BoundedLabel,
    PipelineMetrics,
)
from agent_sre_daemon.stores.errors import StorageError

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable, Sequence

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from prometheus_client import CollectorRegistry, Counter

    from agent_sre.config import Config
    from agent_sre.tracing.batch import BatchResult
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.component import BatchObserver
    from agent_sre_daemon.stores.queue import DurableQueue

_ROLES = frozenset({c.ROLE_GATEWAY, c.ROLE_DUPLICATE})
"""The roles the daemon marks second views with: always counted under their own label."""

log = logging.getLogger("agent_sre.pipeline")
_FALLBACK_SAID = False

SpanAttrs = dict[str, AttrValue]
"""A span's attributes, decoded."""


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


class Pipeline(Component):
    """Shared by the gRPC and HTTP receivers and the proxy (spans of proxied calls).

    Args:
        processor: the span pass (classification, enrichment, observers).
        metrics: the pipeline's Prometheus metrics.
        clock: the node's clock.
    """

    name: ClassVar[str] = "pipeline"
    title: ClassVar[str] = "OTLP pipeline"

    def __init__(
        self,
        config: Config,
        resource_attributes: dict[str, str],
        metrics: PipelineMetrics,
        clock: Clock,
    ) -> None:
        self.config = config
        self._unpriced_model = BoundedLabel(MAX_MODEL_LABELS)
        self.cost_enricher = SpanCostEnricher(
            Pricer(config.budgets.price_overrides),
            self._count_unpriced,
            lambda _model: self.metrics.deferred_pricing.inc(),
        )
        self.processor = TraceBatchProcessor(
            resource_attributes, llm_enrichers=[self.cost_enricher], enricher_keys=PRICING_KEYS
        )
        self.native = self._native_pass(config)
        self.queue: DurableQueue | None = None
        """The durable queue, or None when no upstream is configured (then nothing is stored
        and nothing accumulates); the forwarding component sets it."""
        self.metrics = metrics
        # children looked up once (labels() costs about 2 us a call, several a request); the
        # label values are the daemon's own (protocols, kinds), so the dictionaries stay small
        self._accepted_spans: dict[str, Counter] = {}
        self._spans_by_kind = {
            kind: metrics.spans_by_kind.labels(kind.value) for kind in AgentSpanKind
        }
        self._second_view_role = BoundedLabel(MAX_ROLE_LABELS)
        """``agent_sre.role`` values other than the daemon's own (clients can send any)."""
        self.clock = clock
        self.accepting = True
        self.on_queued: Callable[[], None] = lambda: None
        """Called after a request is queued (wakes the exporter)."""
        self.observers_of_batches: list[BatchObserver] = []
        """Called with the bytes of each accepted trace request after enrichment."""
        self.call_hold: Callable[[ExportTraceServiceRequest, SpanAttrs | None], None] | None = None
        """Where the spans of proxied calls wait for the agents' own spans of the same calls
        (set by the correlation component); None: they go straight in."""

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return PipelineMetrics(registry)

    def set_observers(self, specs: Sequence[SpanObserverSpec | SpanTapSpec]) -> None:
        """Points the span pass at the observers and taps of the current engines."""
        keys = frozenset().union(*(spec.keys for spec in specs)) if specs else frozenset()
        self.processor.set_observers(
            [spec.observe for spec in specs if isinstance(spec, SpanObserverSpec)],
            keys,
            [spec.tap for spec in specs if isinstance(spec, SpanTapSpec)],
        )

    @staticmethod
    def _native_pass(config: Config) -> bool:
        """Whether requests that came as bytes go through the native span pass."""
        global _FALLBACK_SAID
        if config.receivers.otlp.span_pass == "python":
            return False
        if not NATIVE and not _FALLBACK_SAID:
            _FALLBACK_SAID = True
            log.warning(
                "the native span pass is not built (the package was installed without a C"
                " compiler): the Python span pass is in use (same results, more CPU a span)"
            )
        return NATIVE

    async def prepare_reload(self, new: Config) -> Prepared:
        """Prices of received LLM spans follow ``budgets.price_overrides``; the span pass
        follows ``receivers.otlp.span_pass``."""
        if (
            new.budgets.price_overrides == self.config.budgets.price_overrides
            and new.receivers.otlp.span_pass == self.config.receivers.otlp.span_pass
        ):
            return Prepared()
        pricer = Pricer(new.budgets.price_overrides)

        async def commit() -> None:
            self.cost_enricher.pricer = pricer
            self.native = self._native_pass(new)
            self.config = new

        return Prepared(commit=commit)

    def _count_unpriced(self, model: str) -> None:
        self.metrics.unpriced_spans.labels(self._unpriced_model(model)).inc()

    def refused(self, protocol: str, signal: str, exc: ReceiverError) -> None:
        """Counts a request a receiver refused before or outside the pipeline (bad body,
        wrong content type, too large); refusals the pipeline raised are counted already."""
        if exc.reason not in ("queue_full", "stopping", "storage"):
            self.metrics.refused_requests.labels(protocol, signal, exc.reason).inc()

    def export_proxy_call(
        self, request: ExportTraceServiceRequest, attrs: SpanAttrs | None = None
    ) -> None:
        """The span of a proxied call: held for the agent's own span of the call when
        correlation is on, else accepted at once. Never raises.

        Args:
            attrs: the span's attributes as the proxy wrote them, when it has them (then
                they are not read back from the span)."""
        if self.call_hold is not None:
            self.call_hold(request, attrs)
        else:
            self.export_call(request, attrs)

    def export_call(
        self, request: ExportTraceServiceRequest, attrs: SpanAttrs | None = None
    ) -> None:
        """Accepts the span of a proxied call now; a refusal drops it (counted): the call
        already happened and its span cannot be pushed back on anyone. ``attrs``: its
        attributes as the proxy wrote them, when the span is as the proxy built it (the span
        pass then does not read them back from the span)."""
        try:
            self.export_traces_nowait(request, "proxy", request.ByteSize(), attrs)
        except ReceiverError as exc:
            self.metrics.dropped_items.labels("traces", f"proxy_{exc.reason}").inc()
            log.warning("span of a proxied call dropped: %s", exc.message)

    async def export_traces(
        self,
        request: ExportTraceServiceRequest,
        protocol: str,
        wire_size: int,
        body: bytes | None = None,
    ) -> BatchResult:
        """Accepts a decoded trace request (``body``: the bytes it was decoded from, when it
        came as protobuf); returns how many spans were kept and rejected, once they are on
        disk.

        Raises:
            UnavailableError: the queue is full, cannot be written (reason ``storage``), or
                the daemon is stopping (retryable).
            InvalidArgumentError: every span of the request was malformed.
        """
        result, forwarded = self._process_traces(request, protocol, wire_size, body)
        if forwarded is not None:
            try:
                await self._queue().put_async(
                    "traces", forwarded, result.accepted, self.clock.time()
                )
            except StorageError as exc:
                raise self._storage_refused(protocol, "traces", exc, result.accepted) from None
            self.on_queued()
        if result.accepted:
            self._accepted(protocol).inc(result.accepted)
        return result

    def export_traces_nowait(
        self,
        request: ExportTraceServiceRequest,
        protocol: str,
        wire_size: int,
        known: SpanAttrs | None = None,
    ) -> BatchResult:
        """:meth:`export_traces` for spans nobody waits on (the proxy's own): the write is
        submitted, not awaited; a failed write is counted as a drop (``<protocol>_storage``).
        ``known``: the attributes of the request's one span, as it was built from them.
        """
        result, body = self._process_traces(request, protocol, wire_size, known=known)
        if body is not None:
            future = self._queue().put_nowait("traces", body, result.accepted, self.clock.time())
            future.add_done_callback(self._count_lost(protocol, result.accepted))
            self.on_queued()
        if result.accepted:
            self._accepted(protocol).inc(result.accepted)
        return result

    def _process_traces(
        self,
        request: ExportTraceServiceRequest,
        protocol: str,
        wire_size: int,
        wire: bytes | None = None,
        known: SpanAttrs | None = None,
    ) -> tuple[BatchResult, bytes | None]:
        """Admission and the span pass (native over ``wire`` when it is given and the native
        pass is on); the bytes to queue (None: nothing to queue)."""
        try:
            self._check_room(protocol, "traces", wire_size)
        except UnavailableError as exc:
            self.metrics.refused_spans.labels(protocol, exc.reason).inc(count_spans(request))
            raise
        now = self.clock.time()
        body: bytes | None = None
        if wire is not None and self.native:
            result, body = self.processor.process_wire(wire, now)
        else:
            result = self.processor.process(request, now, known)
        metrics = self.metrics
        if result.rejected:
            metrics.refused_spans.labels(protocol, "invalid").inc(result.rejected)
            if not result.accepted:
                raise InvalidArgumentError(result.error_message)
        if result.ignored_values:
            metrics.ignored_values.inc(result.ignored_values)
        by_kind = self._spans_by_kind
        for kind, count in result.by_kind.items():
            by_kind[kind].inc(count)
        for role, count in result.by_role.items():
            label = role if role in _ROLES else self._second_view_role(role)
            metrics.second_view_spans.labels(label).inc(count)
        if not result.accepted or (self.queue is None and not self.observers_of_batches):
            return result, None
        if body is None:
            body = request.SerializeToString()  # once: the queue and the observers share it
        for observe in self.observers_of_batches:
            observe(body, now)
        return result, body if self.queue is not None else None

    async def export_passthrough(
        self,
        signal: str,
        request: ExportMetricsServiceRequest | ExportLogsServiceRequest,
        body: bytes | None,
        protocol: str,
        items: int,
    ) -> None:
        """Accepts metrics or logs, forwarded unchanged (``body`` when given, else re-encoded)."""
        self._check_room(protocol, signal, len(body) if body is not None else request.ByteSize())
        if self.queue is not None:
            data = body if body is not None else request.SerializeToString()
            try:
                await self.queue.put_async(signal, data, items, self.clock.time())
            except StorageError as exc:
                raise self._storage_refused(protocol, signal, exc, 0) from None
            self.on_queued()
        self.metrics.accepted_items.labels(protocol, signal).inc(items)

    def _accepted(self, protocol: str) -> Counter:
        child = self._accepted_spans.get(protocol)
        if child is None:
            child = self._accepted_spans[protocol] = self.metrics.accepted_spans.labels(protocol)
        return child

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
