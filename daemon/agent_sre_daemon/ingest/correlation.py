"""One call, one event: the proxy's spans wait briefly for the agents' own spans.

The shell around :class:`~agent_sre.tracing.correlate.CallCorrelator` (three of them: LLM
calls, tool calls and A2A hand-offs): the proxy hands each call's span here
(:meth:`CallCorrelation.offer`) instead of straight to the pipeline; agents' LLM spans meet
it in the span pass (an enricher that runs before pricing), agents' tool and DELEGATION
spans in a tool enricher; a timer releases the records no agent span claimed in time. On
stop every held span is released, never lost.
Tool calls and hand-offs are linked only while some proxy route is a tool (``api: tool`` or
``mcp``) or an agent (``api: a2a``): with none, no proxy record of either can come, and tool
and DELEGATION spans are not even looked at.
The matching rules are in the core; see ``docs/proxy.md`` ("One call, one event").
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, ClassVar

from prometheus_client import Counter, Gauge

from agent_sre.tracing import conventions as c
from agent_sre.tracing.correlate import (
    CACHE_KEYS,
    DELEGATION_NAME_KEYS,
    TOOL_NAME_KEYS,
    CallCorrelator,
    cache_tokens_of,
    facts_of_view,
)
from agent_sre.tracing.linking import (
    DELEGATION_LINK_KEYS,
    LINK_KEYS,
    TOOL_LINK_KEYS,
    apply_gateway_facts,
    mark_duplicate,
    mark_gateway,
)
from agent_sre.tracing.view import STATUS_CODE_ERROR, classify, read_span, view_of
from agent_sre_daemon.component import Component, Prepared

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.tracing.correlate import AgentOutcome
    from agent_sre.tracing.view import AgentSpan
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.ingest.pipeline import SpanAttrs

log = logging.getLogger("agent_sre.correlation")

_CACHE_KEYS = CACHE_KEYS
_GATEWAY_KEYS = (
    LINK_KEYS | TOOL_LINK_KEYS | DELEGATION_LINK_KEYS | {c.AGENT_SPAN_KIND, *_CACHE_KEYS}
)
TOOL_APIS = frozenset({"tool", "mcp", "a2a"})
"""Route APIs whose calls are linked by the tool enricher: tool calls and A2A hand-offs."""


def links_tools(config: Config) -> bool:
    """Whether tool calls and hand-offs are linked: correlation on, ``tools`` on, and a tool
    or A2A route."""
    correlation = config.proxy.correlation
    return (
        correlation.enabled
        and correlation.tools
        and any(route.api in TOOL_APIS for route in config.proxy.routes)
    )


class ToolLinkMetrics:
    """The tool calls' counterparts of the LLM calls' metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.linked = Counter(
            "agent_sre_tool_calls_linked_total",
            "Tool calls the proxy's span and an agent's own execute_tool span both described, "
            "linked into one event, by link (trace, fingerprint) and which arrived first.",
            ["by", "first"],
            registry=registry,
        )
        self.unlinked = Counter(
            "agent_sre_tool_calls_unlinked_total",
            "Proxy spans of tool calls released as the event with no agent span linked, by "
            "reason (hold_expired, task_ended, bound, shutdown, hold_off, quiet: not held as "
            "no agent's tool span came lately).",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "agent_sre_tool_duplicate_spans_total",
            "Agents' tool spans of calls already counted (arrived after the proxy's span was "
            "released, or a second instrumentation of the call), marked duplicate.",
            registry=registry,
        )
        self.held = Gauge(
            "agent_sre_tool_calls_held",
            "Proxy spans of tool calls waiting for the agent's own span of the call.",
            registry=registry,
        )


class DelegationLinkMetrics:
    """The A2A hand-offs' counterparts of the LLM calls' metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.linked = Counter(
            "agent_sre_delegations_linked_total",
            "A2A hand-offs the proxy's span and an agent's own DELEGATION span both described, "
            "linked into one event, by link (trace, fingerprint) and which arrived first.",
            ["by", "first"],
            registry=registry,
        )
        self.unlinked = Counter(
            "agent_sre_delegations_unlinked_total",
            "Proxy spans of A2A hand-offs released as the event with no agent span linked, by "
            "reason (hold_expired, task_ended, bound, shutdown, hold_off, quiet).",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "agent_sre_delegation_duplicate_spans_total",
            "Agents' DELEGATION spans of hand-offs already counted, marked duplicate.",
            registry=registry,
        )
        self.held = Gauge(
            "agent_sre_delegations_held",
            "Proxy spans of A2A hand-offs waiting for the agent's own span of the hand-off.",
            registry=registry,
        )


class CorrelationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tools = ToolLinkMetrics(registry)
        self.delegations = DelegationLinkMetrics(registry)
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
            "reason (hold_expired, task_ended, bound, shutdown, hold_off, quiet: not held as "
            "no agent's LLM span came lately).",
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


LinkMetrics = CorrelationMetrics | ToolLinkMetrics | DelegationLinkMetrics


class CallCorrelation(Component):
    """Links the proxy's record of each LLM or tool call with the agent's span of it."""

    name: ClassVar[str] = "correlation"
    title: ClassVar[str] = "One call, one event"

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
        self.tools: CallCorrelator[ExportTraceServiceRequest] = CallCorrelator(
            config.hold, config.remember, config.max_calls, names=TOOL_NAME_KEYS
        )
        """Tool calls: the proxy's ``tool`` and ``mcp`` routes, agents' ``execute_tool`` spans."""
        self.delegations: CallCorrelator[ExportTraceServiceRequest] = CallCorrelator(
            config.hold, config.remember, config.max_calls, names=DELEGATION_NAME_KEYS
        )
        """Hand-offs: the proxy's ``a2a`` routes, agents' DELEGATION spans."""
        # read when scraped, not set per call
        self.metrics.held.set_function(lambda: self.correlator.held_count)
        self.metrics.tools.held.set_function(lambda: self.tools.held_count)
        self.metrics.delegations.held.set_function(lambda: self.delegations.held_count)
        self._metrics_of: dict[int, LinkMetrics] = {
            id(self.correlator): self.metrics,
            id(self.tools): self.metrics.tools,
            id(self.delegations): self.metrics.delegations,
        }
        """Each correlator's metrics."""
        # per call while no agent traces its calls: the counters' children, looked up once
        self._passed = {
            (which, reason): metrics.unlinked.labels(reason)
            for which, metrics in self._metrics_of.items()
            for reason in ("quiet", "hold_off")
        }
        self._timer: asyncio.TimerHandle | None = None
        self._installed = False
        self._tools_installed = False

    # -- component ----------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        if self.config.enabled:
            self._install()
        if links_tools(self.context.config):
            self._install_tools()
        return {}

    async def stop(self, deadline: float) -> None:
        """Releases every held span as the event (the proxy and receivers stopped first)."""
        self._uninstall_tools("shutdown")
        self._uninstall("shutdown")

    async def prepare_reload(self, new: Config) -> Prepared:
        config = new.proxy.correlation
        tools = links_tools(new)
        if config == self.config and tools == self._tools_installed:
            return Prepared()

        async def commit() -> None:
            self.config = config
            for correlator in (self.correlator, self.tools, self.delegations):
                correlator.configure(config.hold, config.remember, config.max_calls)
            if not tools:
                self._uninstall_tools("hold_off")
            if config.enabled and not self._installed:
                self._install()
            elif not config.enabled and self._installed:
                self._uninstall("hold_off")
            if tools and not self._tools_installed:
                self._install_tools()
            now = self.clock.time()
            if self._installed:
                self._release(self.correlator.expire(now), "hold_expired")
            if self._tools_installed:
                self._release(self.tools.expire(now), "hold_expired", self.metrics.tools)
                self._release(
                    self.delegations.expire(now), "hold_expired", self.metrics.delegations
                )
            self._schedule()

        return Prepared(commit=commit)

    def status(self) -> dict[str, object]:
        return {
            "correlation": {
                "enabled": self._installed,
                "held": self.correlator.held_count,
                "holding": self._installed and self.correlator.holding,
                "tools": self._tools_installed,
                "tools_held": self.tools.held_count,
                "tools_holding": self._tools_installed and self.tools.holding,
                "delegations_held": self.delegations.held_count,
            }
        }

    def _install(self) -> None:
        pipeline = self.context.pipeline
        pipeline.call_hold = self.offer
        pipeline.processor.add_enricher(self.on_agent_llm, LINK_KEYS, first=True)
        if self.on_task not in pipeline.processor.task_hooks:
            pipeline.processor.task_hooks.append(self.on_task)
        self._installed = True

    def _uninstall(self, reason: str) -> None:
        if not self._installed:
            return
        pipeline = self.context.pipeline
        pipeline.processor.remove_enricher(self.on_agent_llm)
        self._installed = False
        self._unhook()
        self._release(self.correlator.release_all(), reason)

    def _install_tools(self) -> None:
        pipeline = self.context.pipeline
        pipeline.call_hold = self.offer
        pipeline.processor.add_tool_enricher(
            self.on_agent_tool, TOOL_LINK_KEYS | DELEGATION_LINK_KEYS
        )
        if self.on_task not in pipeline.processor.task_hooks:
            pipeline.processor.task_hooks.append(self.on_task)
        self._tools_installed = True

    def _uninstall_tools(self, reason: str) -> None:
        if not self._tools_installed:
            return
        self.context.pipeline.processor.remove_tool_enricher(self.on_agent_tool)
        self._tools_installed = False
        self._unhook()
        self._release(self.tools.release_all(), reason, self.metrics.tools)
        self._release(self.delegations.release_all(), reason, self.metrics.delegations)

    def _unhook(self) -> None:
        """Once neither kind of call is linked: the proxy's spans go straight in."""
        if self._installed or self._tools_installed:
            return
        pipeline = self.context.pipeline
        pipeline.call_hold = None
        if self.on_task in pipeline.processor.task_hooks:
            pipeline.processor.task_hooks.remove(self.on_task)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the proxy's side ---------------------------------------------------------------

    def offer(self, request: ExportTraceServiceRequest, attrs: SpanAttrs | None = None) -> None:
        """The span of a proxied call (never raises: the call already happened); ``attrs``:
        its attributes as the proxy wrote them, else they are read from the span."""
        try:
            self._offer(request, attrs)
        except Exception:
            log.exception("correlating a proxied call failed; its span goes in as it is")
            self.context.pipeline.export_call(request)

    # hot path: per proxied call
    def _offer(self, request: ExportTraceServiceRequest, attrs: SpanAttrs | None) -> None:
        span = _only_span(request)
        if span is None:
            self.context.pipeline.export_call(request)
            return
        if attrs is None:
            view = read_span(span, _GATEWAY_KEYS)
        else:
            kind, explicit = classify(attrs)
            if kind is c.AgentSpanKind.LLM_INFERENCE and self._installed:
                passing: CallCorrelator[ExportTraceServiceRequest] | None = self.correlator
            elif kind is c.AgentSpanKind.TOOL_CALL and self._tools_installed:
                passing = self.tools
            elif kind is c.AgentSpanKind.DELEGATION and self._tools_installed:
                passing = self.delegations
            else:
                passing = None
            now = self.clock.time()
            if passing is not None and passing.passing(now):
                # no agent traces its calls: the span is the event at once, remembered as
                # the attributes it has (facts built only if an agent span comes)
                record = (
                    attrs,
                    span.trace_id,
                    span.span_id,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    span.status.code == STATUS_CODE_ERROR,
                    span.parent_span_id,
                    now + passing.remember,
                )
                which = id(passing)
                forced = passing.remember_quiet(record, now)
                if forced:
                    self._release(forced, "bound", self._metrics_of[which])
                self._passed[which, "quiet" if passing.hold > 0 else "hold_off"].inc()
                self.context.pipeline.export_call(request, attrs)
                return
            view = view_of(span, kind, explicit, attrs)
        metrics: LinkMetrics
        if view.kind is c.AgentSpanKind.LLM_INFERENCE and self._installed:
            correlator, metrics = self.correlator, self.metrics
            facts = facts_of_view(view, span.parent_span_id, cache_tokens_of(view.attrs))
        elif view.kind is c.AgentSpanKind.TOOL_CALL and self._tools_installed:
            correlator, metrics = self.tools, self.metrics.tools
            facts = facts_of_view(view, span.parent_span_id, names=TOOL_NAME_KEYS)
        elif view.kind is c.AgentSpanKind.DELEGATION and self._tools_installed:
            correlator, metrics = self.delegations, self.metrics.delegations
            facts = facts_of_view(view, span.parent_span_id, names=DELEGATION_NAME_KEYS)
        else:
            self.context.pipeline.export_call(request)
            return
        # a held record waits as the request itself (only while agents trace their calls, and
        # until their span of it comes): nothing to encode now and decode again on release
        outcome, forced = correlator.offer_gateway(facts, request, self.clock.time())
        self._release(forced, "bound", metrics)
        if outcome.linked_to is not None:
            event = outcome.linked_to
            identity = event.identity or {}
            mark_gateway(span, event, outcome.key, identity, move_cost=event.has_cost)
            metrics.linked.labels(outcome.key, "agent").inc()
            self.context.pipeline.export_call(request)
        elif outcome.held:
            self._schedule()
        else:
            metrics.unlinked.labels("quiet" if outcome.quiet else "hold_off").inc()
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
        self._linked(span, view, outcome, self.correlator, self.metrics)

    # hot path: per tool or DELEGATION span (only while a proxy route is a tool or an agent)
    def on_agent_tool(self, span: Span, view: AgentSpan, now: float) -> None:
        """An agent's tool span (``execute_tool``, OpenInference TOOL) or DELEGATION span:
        links it to the proxy's record of the call, or remembers it by its view, as for LLM
        spans."""
        if c.AGENT_SRE_PROXY_ROUTE in view.attrs:  # the proxy's own span, released as the event
            return
        metrics: LinkMetrics
        if view.kind is c.AgentSpanKind.DELEGATION:  # an A2A hand-off
            correlator, metrics = self.delegations, self.metrics.delegations
        else:
            correlator, metrics = self.tools, self.metrics.tools
        outcome = correlator.offer_agent(view, now)
        if outcome is None:
            return
        self._linked(span, view, outcome, correlator, metrics)

    def _linked(
        self,
        span: Span,
        view: AgentSpan,
        outcome: AgentOutcome[ExportTraceServiceRequest],
        correlator: CallCorrelator[ExportTraceServiceRequest],
        metrics: LinkMetrics,
    ) -> None:
        """An agent's span some proxy record links to: the event (the records it claimed
        are forwarded as the gateway view), or a duplicate."""
        if outcome.duplicate_of is not None:
            mark_duplicate(span, view, outcome.duplicate_of, outcome.key)
            metrics.duplicates.inc()
            return
        facts = outcome.agent
        assert facts is not None and facts.identity is not None
        pipeline = self.context.pipeline
        for index, (entry, key) in enumerate(outcome.claimed):
            request, entry.payload = entry.payload, None
            if request is None:
                continue
            gateway = _only_span(request)
            assert gateway is not None
            if index == 0:
                apply_gateway_facts(span, view, gateway, key)
                metrics.linked.labels(key, "proxy").inc()
            mark_gateway(gateway, facts, key, facts.identity, move_cost=True)
            pipeline.export_call(request)

    def on_task(self, view: AgentSpan, now: float) -> None:
        """An agent's task span: held records of its trace inside it are events now (its
        LLM and tool spans, if any, came before it), before the task's cost is judged."""
        correlator = self.correlator
        # hot path: per task span; nothing held (the ingest-only case): not even the trace id
        if correlator.held_count and correlator.has_held_trace(view.trace_id):
            released = correlator.release_trace(view.trace_id, view.start_ns, view.end_ns)
            self._release(released, "task_ended")
        for calls, metrics in (
            (self.tools, self.metrics.tools),
            (self.delegations, self.metrics.delegations),
        ):
            if calls.held_count and calls.has_held_trace(view.trace_id):
                released = calls.release_trace(view.trace_id, view.start_ns, view.end_ns)
                self._release(released, "task_ended", metrics)

    # -- releasing ----------------------------------------------------------------------

    def _release(
        self,
        requests: list[ExportTraceServiceRequest],
        reason: str,
        metrics: LinkMetrics | None = None,
    ) -> None:
        if not requests:
            return
        metrics = metrics or self.metrics
        metrics.unlinked.labels(reason).inc(len(requests))
        for request in requests:
            self.context.pipeline.export_call(request)

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        correlators = (self.correlator, self.tools, self.delegations)
        dues = [d for d in (calls.next_due() for calls in correlators) if d is not None]
        if not dues:
            return
        delay = max(0.0, min(dues) - self.clock.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self.clock.time()
        self._release(self.correlator.expire(now), "hold_expired")
        self._release(self.tools.expire(now), "hold_expired", self.metrics.tools)
        self._release(self.delegations.expire(now), "hold_expired", self.metrics.delegations)
        self._schedule()


def _only_span(request: ExportTraceServiceRequest) -> Span | None:
    """The proxy's requests hold exactly one span."""
    try:
        return request.resource_spans[0].scope_spans[0].spans[0]
    except IndexError:
        pass
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                return span
    return None
