"""One pass over an OTLP trace request: validate ids, classify, enrich, observe.

This is the per-span hot path of the daemon. It reads each span once into an
:class:`~agent_sre.tracing.view.AgentSpan`, hands the view to the observers (SLI windows,
trace buffer), writes ``agent.span.kind`` where the span lacked it, and removes spans whose
ids are malformed so the rest of the request can still be accepted (``partial_success``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.enrich import add_string_attribute, enrich_resource
from agent_sre.tracing.view import (
    CLASSIFY_KEYS,
    CORE_KEYS,
    AgentSpan,
    AttrValue,
    classify,
    read_attrs,
    view_of,
)

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

SpanEnricher = Callable[["Span", AgentSpan, float], None]
"""Called with each valid LLM_INFERENCE span (or TOOL_CALL span: tool enrichers) (protobuf,
to write to) and its view, before the observers."""

SpanObserver = Callable[[AgentSpan, float], None]
"""Called with each valid span's view and the time (unix seconds) the batch was received."""

SpanTap = Callable[["Span", AgentSpanKind, dict[str, AttrValue], float], None]
"""Called with each valid span (the protobuf, after enrichment: read, never write), its kind,
the values of the wanted keys (the resource's, then the span's) and the time received.
Cheaper than an observer: no view is built. Taps see second views of an LLM call too (they
carry ``agent_sre.role``), which observers never do."""

TaskHook = Callable[["Span", float], None]
"""Called with each valid AGENT_TASK span before the observers see it."""

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


@dataclass
class BatchResult:
    """What one pass over a request found."""

    accepted: int = 0
    rejected: int = 0
    by_kind: dict[AgentSpanKind, int] = field(default_factory=dict)
    """Spans counted, by kind (second views of an LLM call are not)."""
    by_role: dict[str, int] = field(default_factory=dict)
    """Spans marked ``agent_sre.role`` (a second view of an LLM call), by role: forwarded,
    never counted."""
    first_problem: str = ""
    ignored_values: int = 0
    """Attribute values ignored as unusable (NaN, Inf); their spans are kept."""

    @property
    def error_message(self) -> str:
        """An English message for ``partial_success`` (empty when nothing was rejected)."""
        if not self.rejected:
            return ""
        return f"{self.rejected} span(s) rejected; first: {self.first_problem}"


def span_id_problem(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str:
    """Returns why the ids are invalid per the OTLP spec, or ``""`` when they are fine."""
    if len(trace_id) != 16:
        return f"trace_id must be 16 bytes, got {len(trace_id)}"
    if trace_id == _ZERO_TRACE_ID:
        return "trace_id is all zeros"
    if len(span_id) != 8:
        return f"span_id must be 8 bytes, got {len(span_id)}"
    if span_id == _ZERO_SPAN_ID:
        return "span_id is all zeros"
    if parent_span_id and len(parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(parent_span_id)}"
    return ""


class TraceBatchProcessor:
    """Classifies, enriches and observes the spans of trace requests.

    Args:
        resource_attributes: set on each resource that lacks them (node identity).
        observers: called with each valid span's view, in order.
        wanted: attribute keys observers and taps need beyond the view's core keys.
        llm_enrichers: write onto LLM_INFERENCE spans (cost), before the observers see them.
        enricher_keys: attribute keys the enrichers read.
        task_hooks: called with each AGENT_TASK span before the observers.

    ``tool_enrichers`` (:meth:`add_tool_enricher`) are called with each TOOL_CALL span, as
    LLM enrichers are with LLM spans.
    """

    def __init__(
        self,
        resource_attributes: Mapping[str, str],
        observers: list[SpanObserver] | None = None,
        wanted: frozenset[str] = frozenset(),
        llm_enrichers: list[SpanEnricher] | None = None,
        enricher_keys: frozenset[str] = frozenset(),
        task_hooks: list[TaskHook] | None = None,
    ) -> None:
        self.resource_attributes = dict(resource_attributes)
        self.llm_enrichers = list(llm_enrichers or [])
        self.task_hooks = list(task_hooks or [])
        self.tool_enrichers: list[SpanEnricher] = []
        self._enricher_keys = enricher_keys
        self.observers: list[SpanObserver] = []
        self.taps: list[SpanTap] = []
        self.wanted = CLASSIFY_KEYS
        self.set_observers(observers or [], wanted)

    def add_enricher(self, enricher: SpanEnricher, keys: frozenset[str], first: bool) -> None:
        """Adds an LLM enricher (``first``: before the others) reading ``keys``."""
        if first:
            self.llm_enrichers.insert(0, enricher)
        else:
            self.llm_enrichers.append(enricher)
        self._enricher_keys = self._enricher_keys | keys
        self.wanted = self.wanted | keys
        self.resource_wanted = self.wanted | CORE_KEYS

    def remove_enricher(self, enricher: SpanEnricher) -> None:
        if enricher in self.llm_enrichers:
            self.llm_enrichers.remove(enricher)

    def add_tool_enricher(self, enricher: SpanEnricher, keys: frozenset[str]) -> None:
        """Adds a TOOL_CALL enricher reading ``keys`` (decoded on every span from now on)."""
        self.tool_enrichers.append(enricher)
        self._enricher_keys = self._enricher_keys | keys
        self.wanted = self.wanted | keys
        self.resource_wanted = self.wanted | CORE_KEYS

    def remove_tool_enricher(self, enricher: SpanEnricher) -> None:
        if enricher in self.tool_enrichers:
            self.tool_enrichers.remove(enricher)

    def set_observers(
        self,
        observers: list[SpanObserver],
        wanted: frozenset[str],
        taps: list[SpanTap] | None = None,
    ) -> None:
        """Replaces the observers and taps; with no observer only the keys classification,
        the enrichers and the taps need are decoded (taps need no view's core keys)."""
        self.observers = list(observers)
        self.taps = list(taps or [])
        if observers:
            base = CLASSIFY_KEYS | CORE_KEYS | wanted
        else:
            base = CLASSIFY_KEYS | wanted if self.taps else CLASSIFY_KEYS
        enriched = self.llm_enrichers or self.tool_enrichers
        self.wanted = base | self._enricher_keys if enriched else base
        # a resource is read once per request: its identity (agent id, ...) always is, so
        # taps that read few keys per span still see who sent the spans
        self.resource_wanted = self.wanted | CORE_KEYS

    def process(self, request: ExportTraceServiceRequest, now: float) -> BatchResult:
        """Validates, classifies, enriches (in place) and observes every span of ``request``,
        received at ``now`` (unix seconds)."""
        result = BatchResult()
        by_kind = result.by_kind
        wanted = self.wanted
        observers = self.observers
        taps = self.taps
        enrichers = self.llm_enrichers
        tool_enrichers = self.tool_enrichers
        task_hooks = self.task_hooks
        role_key = c.AGENT_SRE_ROLE
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource
            resource_attrs: dict[str, AttrValue] = {}
            result.ignored_values += read_attrs(
                resource.attributes, self.resource_wanted, resource_attrs
            )
            enrich_resource(resource, self.resource_attributes)
            for scope_spans in resource_spans.scope_spans:
                spans = scope_spans.spans
                bad: list[int] = []
                # hot path: per span
                for index, span in enumerate(spans):
                    trace_id = span.trace_id
                    span_id = span.span_id
                    if (
                        len(trace_id) != 16
                        or len(span_id) != 8
                        or trace_id == _ZERO_TRACE_ID
                        or span_id == _ZERO_SPAN_ID
                        or len(span.parent_span_id) not in (0, 8)
                    ):
                        bad.append(index)
                        if not result.first_problem:
                            problem = span_id_problem(trace_id, span_id, span.parent_span_id)
                            result.first_problem = f"span {span.name!r}: {problem}"
                        continue
                    attrs = resource_attrs.copy() if resource_attrs else {}
                    if read_attrs(span.attributes, wanted, attrs):
                        result.ignored_values += 1
                    kind, explicit = classify(attrs)
                    if not explicit and kind is not AgentSpanKind.OTHER:
                        add_string_attribute(span.attributes, c.AGENT_SPAN_KIND, kind.value)
                    if role_key in attrs:  # a second view of an LLM call: never counted
                        self._second_view(result, attrs)
                        for tap in taps:
                            tap(span, kind, attrs, now)
                        continue
                    view = None
                    if enrichers and kind is AgentSpanKind.LLM_INFERENCE:
                        view = view_of(span, kind, explicit, attrs)
                        for enrich in enrichers:
                            enrich(span, view, now)
                    elif task_hooks and kind is AgentSpanKind.AGENT_TASK:
                        for hook in task_hooks:
                            hook(span, now)
                    elif tool_enrichers and kind is AgentSpanKind.TOOL_CALL:
                        view = view_of(span, kind, explicit, attrs)
                        for enrich in tool_enrichers:
                            enrich(span, view, now)
                    if view is not None and role_key in attrs:  # an enricher marked it
                        self._second_view(result, attrs)
                        for tap in taps:
                            tap(span, kind, attrs, now)
                        continue
                    by_kind[kind] = by_kind.get(kind, 0) + 1
                    if observers:
                        if view is None:
                            view = view_of(span, kind, explicit, attrs)
                        for observe in observers:
                            observe(view, now)
                    for tap in taps:
                        tap(span, kind, attrs, now)
                for index in reversed(bad):
                    del spans[index]
                result.rejected += len(bad)
                result.accepted += len(spans)
        return result

    @staticmethod
    def _second_view(result: BatchResult, attrs: dict[str, AttrValue]) -> None:
        role = str(attrs[c.AGENT_SRE_ROLE])
        result.by_role[role] = result.by_role.get(role, 0) + 1
