"""One LLM call, one event: the proxy's spans wait briefly for the agents' own spans.

The shell around :class:`~agent_sre.tracing.correlate.CallCorrelator`: the proxy hands each
call's span here (:meth:`CallCorrelation.offer`) instead of straight to the pipeline; agents'
LLM spans meet it in the span pass (an enricher that runs before pricing); a timer releases
the records no agent span claimed in time. On stop every held span is released, never lost.
The matching rules are in the core; see ``docs/proxy.md`` ("One call, one event").
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, ClassVar

from prometheus_client import Counter, Gauge

from agent_sre.tracing import conventions as c
from agent_sre.tracing.correlate import CallCorrelator, facts_of_view
from agent_sre.tracing.linking import (
    LINK_KEYS,
    apply_gateway_facts,
    mark_duplicate,
    mark_gateway,
)
from agent_sre.tracing.view import read_span
from agent_sre_daemon.component import Component, Prepared

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.tracing.view import AgentSpan
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.correlation")

_CACHE_KEYS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens")
_GATEWAY_KEYS = LINK_KEYS | {c.AGENT_SPAN_KIND, *_CACHE_KEYS}


class CorrelationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.linked = Counter(
            "agent_sre_llm_calls_linked_total",
            "LLM calls the proxy's span and an agent's own span both described, linked into "
            "one event, by link (response_id, trace, fingerprint) and which arrived first.",
            ["by", "first"],
            registry=registry,
        )
        self.unlinked = Counter(
            "agent_sre_llm_calls_unlinked_total",
            "Proxy spans of LLM calls released as the event with no agent span linked, by "
            "reason (hold_expired, task_ended, bound, shutdown, hold_off).",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "agent_sre_llm_duplicate_spans_total",
            "Agents' LLM spans of calls already counted (arrived after the proxy's span was "
            "released, or a second instrumentation of the call), marked duplicate.",
            registry=registry,
        )
        self.held = Gauge(
            "agent_sre_llm_calls_held",
            "Proxy spans waiting for the agent's own span of the call.",
            registry=registry,
        )


class CallCorrelation(Component):
    """Links the proxy's record of each LLM call with the agent's span of it."""

    name: ClassVar[str] = "correlation"
    title: ClassVar[str] = "One LLM call, one event"

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> CorrelationMetrics:
        return CorrelationMetrics(registry)

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        config = context.config.proxy.correlation
        self.config = config
        self.metrics = CorrelationMetrics(context.registry)
        self.correlator: CallCorrelator[ExportTraceServiceRequest] = CallCorrelator(
            config.hold, config.remember, config.max_calls
        )
        self._timer: asyncio.TimerHandle | None = None
        self._installed = False

    # -- component ----------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        if self.config.enabled:
            self._install()
        return {}

    async def stop(self, deadline: float) -> None:
        """Releases every held span as the event (the proxy and receivers stopped first)."""
        self._uninstall("shutdown")

    async def prepare_reload(self, new: Config) -> Prepared:
        config = new.proxy.correlation
        if config == self.config:
            return Prepared()

        async def commit() -> None:
            self.config = config
            self.correlator.configure(config.hold, config.remember, config.max_calls)
            if config.enabled and not self._installed:
                self._install()
            elif not config.enabled and self._installed:
                self._uninstall("hold_off")
            elif self._installed:
                self._release(self.correlator.expire(self.clock.time()), "hold_expired")
                self._schedule()

        return Prepared(commit=commit)

    def status(self) -> dict[str, object]:
        return {"correlation": {"enabled": self._installed, "held": self.correlator.held_count}}

    def _install(self) -> None:
        pipeline = self.context.pipeline
        pipeline.call_hold = self.offer
        pipeline.processor.add_enricher(self.on_agent_llm, LINK_KEYS, first=True)
        pipeline.processor.task_hooks.append(self.on_task)
        self._installed = True

    def _uninstall(self, reason: str) -> None:
        if not self._installed:
            return
        pipeline = self.context.pipeline
        pipeline.call_hold = None
        pipeline.processor.remove_enricher(self.on_agent_llm)
        if self.on_task in pipeline.processor.task_hooks:
            pipeline.processor.task_hooks.remove(self.on_task)
        self._installed = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release(self.correlator.release_all(), reason)

    # -- the proxy's side ---------------------------------------------------------------

    def offer(self, request: ExportTraceServiceRequest) -> None:
        """The span of a proxied call (never raises: the call already happened)."""
        try:
            self._offer(request)
        except Exception:
            log.exception("correlating a proxied call failed; its span goes in as it is")
            self.context.pipeline.export_call(request)

    def _offer(self, request: ExportTraceServiceRequest) -> None:
        span = _only_span(request)
        if span is None:
            self.context.pipeline.export_call(request)
            return
        view = read_span(span, _GATEWAY_KEYS)
        if view.kind is not c.AgentSpanKind.LLM_INFERENCE:
            self.context.pipeline.export_call(request)
            return
        cache = sum(v for k in _CACHE_KEYS if isinstance(v := view.attrs.get(k), int))
        facts = facts_of_view(view, span.parent_span_id, cache)
        outcome, forced = self.correlator.offer_gateway(facts, request, self.clock.time())
        self._release(forced, "bound")
        if outcome.linked_to is not None:
            event = outcome.linked_to
            identity = event.identity or {}
            mark_gateway(span, event, outcome.key, identity, move_cost=event.has_cost)
            self.metrics.linked.labels(outcome.key, "agent").inc()
            self.context.pipeline.export_call(request)
        elif outcome.held:
            self.metrics.held.set(self.correlator.held_count)
            self._schedule()
        else:
            self.metrics.unlinked.labels("hold_off").inc()
            self.context.pipeline.export_call(request)

    # -- the agents' side (in the span pass) ----------------------------------------------

    # hot path: per LLM span
    def on_agent_llm(self, span: Span, view: AgentSpan, now: float) -> None:
        """An agent's LLM span, before pricing: links it to the proxy's record of the call.

        Unlinked, the span is remembered by its view (read after pricing, whether it carries
        a cost, when a proxy record of the call comes later)."""
        if c.AGENT_SRE_PROXY_ROUTE in view.attrs:  # the proxy's own span, released as the event
            return
        outcome = self.correlator.offer_agent(view, now)
        if outcome is None:  # remembered: the proxy's record may still come
            return
        if outcome.duplicate_of is not None:
            mark_duplicate(span, view, outcome.duplicate_of, outcome.key)
            self.metrics.duplicates.inc()
            return
        facts = outcome.agent
        assert facts is not None and facts.identity is not None
        pipeline = self.context.pipeline
        for index, (entry, key) in enumerate(outcome.claimed):
            request = entry.payload
            entry.payload = None
            if request is None:
                continue
            gateway = _only_span(request)
            assert gateway is not None
            if index == 0:
                apply_gateway_facts(span, view, gateway, key)
                self.metrics.linked.labels(key, "proxy").inc()
            mark_gateway(gateway, facts, key, facts.identity, move_cost=True)
            pipeline.export_call(request)
        self.metrics.held.set(self.correlator.held_count)

    def on_task(self, span: Span, now: float) -> None:
        """An agent's task span: held records of its trace inside it are events now (its
        LLM spans, if any, came before it), before the task's cost is judged."""
        correlator = self.correlator
        # hot path: per task span; nothing held (the ingest-only case): not even the trace id
        if correlator.held_count and correlator.has_held_trace(span.trace_id):
            released = correlator.release_trace(
                span.trace_id, span.start_time_unix_nano, span.end_time_unix_nano
            )
            self._release(released, "task_ended")

    # -- releasing ----------------------------------------------------------------------

    def _release(self, requests: list[ExportTraceServiceRequest], reason: str) -> None:
        if not requests:
            return
        self.metrics.unlinked.labels(reason).inc(len(requests))
        self.metrics.held.set(self.correlator.held_count)
        for request in requests:
            self.context.pipeline.export_call(request)

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        due = self.correlator.next_due()
        if due is None:
            return
        delay = max(0.0, due - self.clock.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._release(self.correlator.expire(self.clock.time()), "hold_expired")
        self._schedule()


def _only_span(request: ExportTraceServiceRequest) -> Span | None:
    """The proxy's requests hold exactly one span."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                return span
    return None
