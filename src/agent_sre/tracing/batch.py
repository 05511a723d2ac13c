"""One pass over an OTLP trace request: validate ids, classify, enrich, observe.

This is the per-span hot path of the daemon. It reads each span once into an
:class:`~agent_sre.tracing.view.AgentSpan`, hands the view to the observers (SLI windows,
trace buffer), writes ``agent.span.kind`` where the span lacked it, and removes spans whose
ids are malformed so the rest of the request can still be accepted (``partial_success``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from agent_sre.numbers import MAX_MAGNITUDE
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.enrich import add_string_attribute, enrich_resource
from agent_sre.tracing.view import (
    CLASSIFY_KEYS,
    CORE_KEYS,
    AgentSpan,
    AttrValue,
    classify,
    known_attrs,
    read_attrs,
    view_of,
)
from agent_sre.tracing.wirespan import WireSpan, encode_attribute

if TYPE_CHECKING:
    from types import ModuleType

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

_wirepass: ModuleType | None
try:
    from agent_sre.tracing import _wirepass
except ImportError:  # built without a C compiler: the Python pass does it all
    _wirepass = None

NATIVE = _wirepass is not None
"""Whether the native span pass (:meth:`TraceBatchProcessor.process_wire`) is built."""

SpanEnricher = Callable[["Span", AgentSpan, float], None]
"""Called with each valid LLM_INFERENCE span (or TOOL_CALL span: tool enrichers) (protobuf,
to write to) and its view, before the observers."""

SpanObserver = Callable[[AgentSpan, float], None]
"""Called with each valid span's view and the time (unix seconds) the batch was received."""

SpanTap = Callable[[AgentSpan, float], None]
"""Called with each valid span's view (after enrichment: read, never write) and the time
received. Taps see second views of an LLM call too (they carry ``agent_sre.role``), which
observers never do; a tap's keys are decoded on every span."""

TaskHook = Callable[[AgentSpan, float], None]
"""Called with each valid AGENT_TASK span's view before the observers see it."""

_ENRICHED_CALLS = frozenset({AgentSpanKind.TOOL_CALL, AgentSpanKind.DELEGATION})
"""The kinds tool enrichers see: calls the proxy carries besides LLM calls."""
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

    ``tool_enrichers`` (:meth:`add_tool_enricher`) are called with each TOOL_CALL and
    DELEGATION span (the calls the proxy's tool, MCP and A2A routes carry), as LLM
    enrichers are with LLM spans.
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
        self.resource_attributes = resource_attributes
        self.llm_enrichers = list(llm_enrichers or [])
        self.task_hooks = list(task_hooks or [])
        self.tool_enrichers: list[SpanEnricher] = []
        self._enricher_keys = enricher_keys
        self.observers: list[SpanObserver] = []
        self.taps: list[SpanTap] = []
        self.wanted = CLASSIFY_KEYS
        self.set_observers(observers or [], wanted)

    @property
    def resource_attributes(self) -> dict[str, str]:
        """Set on each resource that lacks them (``agent_sre.node`` always)."""
        return self._resource_attributes

    @resource_attributes.setter
    def resource_attributes(self, attrs: Mapping[str, str]) -> None:
        self._resource_attributes = dict(attrs)
        self._node_attrs = tuple(self._resource_attributes.items())

    def add_enricher(self, enricher: SpanEnricher, keys: frozenset[str], first: bool) -> None:
        """Adds an LLM enricher (``first``: before the others) reading ``keys``."""
        if first:
            self.llm_enrichers.insert(0, enricher)
        else:
            self.llm_enrichers.append(enricher)
        self._enricher_keys = self._enricher_keys | keys
        self._set_wanted(self.wanted | keys)

    def remove_enricher(self, enricher: SpanEnricher) -> None:
        if enricher in self.llm_enrichers:
            self.llm_enrichers.remove(enricher)

    def add_tool_enricher(self, enricher: SpanEnricher, keys: frozenset[str]) -> None:
        """Adds a TOOL_CALL enricher reading ``keys`` (decoded on every span from now on)."""
        self.tool_enrichers.append(enricher)
        self._enricher_keys = self._enricher_keys | keys
        self._set_wanted(self.wanted | keys)

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
        self._set_wanted(base | self._enricher_keys if enriched else base)

    def _set_wanted(self, wanted: frozenset[str]) -> None:
        self.wanted = wanted
        # a resource is read once per request: its identity (agent id, ...) always is, so
        # taps that read few keys per span still see who sent the spans
        self.resource_wanted = wanted | CORE_KEYS
        self._span_keys = tuple(sorted(wanted))
        self._resource_keys = tuple(sorted(self.resource_wanted))

    def process(
        self,
        request: ExportTraceServiceRequest,
        now: float,
        known: Mapping[str, AttrValue] | None = None,
    ) -> BatchResult:
        """Validates, classifies, enriches (in place) and observes every span of ``request``,
        received at ``now`` (unix seconds). The reference pass: :meth:`process_wire` gives the
        same results from the request's bytes.

        Args:
            known: the attributes of the request's one span as its maker wrote them (the
                proxy's span of a call, built from this dictionary): read instead of the
                span's own, with the same result. Ignored unless the request holds one span.
        """
        if known is not None and not _one_span(request):
            known = None
        result = BatchResult()
        by_kind = result.by_kind
        wanted = self.wanted
        dispatching = bool(
            self.observers
            or self.taps
            or self.llm_enrichers
            or self.tool_enrichers
            or self.task_hooks
        )
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
                    if known is not None:
                        if known_attrs(known, wanted, attrs):
                            result.ignored_values += 1
                    elif read_attrs(span.attributes, wanted, attrs):
                        result.ignored_values += 1
                    kind, explicit = classify(attrs)
                    if not explicit and kind is not AgentSpanKind.OTHER:
                        add_string_attribute(span.attributes, c.AGENT_SPAN_KIND, kind.value)
                    if dispatching:
                        self._dispatch(result, view_of(span, kind, explicit, attrs), span, now)
                    elif role_key in attrs:
                        self._second_view(result, attrs)
                    else:
                        by_kind[kind] = by_kind.get(kind, 0) + 1
                for index in reversed(bad):
                    del spans[index]
                result.rejected += len(bad)
                result.accepted += len(spans)
        return result

    def process_wire(self, body: bytes, now: float) -> tuple[BatchResult, bytes]:
        """:meth:`process` over the bytes of an ``ExportTraceServiceRequest`` (decoded once
        already, so known to be valid): the same result, and the bytes to forward.

        The native scan reads each span's ids, times, status and wanted attributes without
        a Python object per attribute and builds the views; enrichers get a
        :class:`~agent_sre.tracing.wirespan.WireSpan`, which appends attributes to the
        forwarded bytes and decodes the span only when an enricher does more (linking).

        Raises:
            RuntimeError: the native span pass is not built (:data:`NATIVE`).
            ValueError: the bytes are not a well-formed request.
        """
        if _wirepass is None:
            raise RuntimeError("the native span pass is not built")
        spans, places, ignored = _wirepass.scan(
            body, self._span_keys, self._resource_keys, _KIND_TABLES, AgentSpan, MAX_MAGNITUDE
        )
        place = memoryview(places).cast("q")
        result = BatchResult(ignored_values=ignored)
        by_kind = result.by_kind
        edits: list[object] = []
        add_edit = edits.append
        observers = self.observers
        taps = self.taps
        task_hooks = self.task_hooks
        dispatching = bool(observers or taps or task_hooks)
        enrichers = self.llm_enrichers
        tool_enrichers = self.tool_enrichers
        role_key = c.AGENT_SRE_ROLE
        other = AgentSpanKind.OTHER
        llm = AgentSpanKind.LLM_INFERENCE
        tool = AgentSpanKind.TOOL_CALL
        delegation = AgentSpanKind.DELEGATION
        task = AgentSpanKind.AGENT_TASK
        valid = 0
        # hot path: per span
        for view in spans:
            if view.__class__ is tuple:  # malformed ids: dropped, the rest accepted
                result.rejected += 1
                if not result.first_problem:
                    trace_id, span_id, parent_span_id, name = view
                    problem = span_id_problem(trace_id, span_id, parent_span_id)
                    result.first_problem = f"span {name!r}: {problem}"
                add_edit(False)
                continue
            assert isinstance(view, AgentSpan)
            kind = view.kind
            if kind is None:  # a value only Python's case mapping can match
                kind, explicit = classify(view.attrs)
                view.kind = kind
                view.explicit_kind = explicit
            added = None if view.explicit_kind or kind is other else kind.value
            attrs = view.attrs
            if (
                (enrichers and kind is llm)
                or (tool_enrichers and (kind is tool or kind is delegation))
            ) and role_key not in attrs:
                handle = WireSpan(
                    body,
                    place[2 * valid],
                    place[2 * valid + 1],
                    b"" if added is None else _KIND_ATTRIBUTE[kind],
                )
                self._dispatch(result, view, cast("Span", handle), now)
                add_edit(handle.edit())
            else:
                add_edit(added)
                if role_key in attrs:
                    self._dispatch(result, view, None, now)
                elif dispatching:
                    # _dispatch inlined for the spans no enricher writes
                    if task_hooks and kind is task:
                        for hook in task_hooks:
                            hook(view, now)
                    by_kind[kind] = by_kind.get(kind, 0) + 1
                    for observe in observers:
                        observe(view, now)
                    for tap in taps:
                        tap(view, now)
                else:
                    by_kind[kind] = by_kind.get(kind, 0) + 1
            valid += 1
        result.accepted = valid
        forwarded = _wirepass.build(
            body, edits, c.AGENT_SPAN_KIND, self._node_attrs, c.AGENT_SRE_NODE
        )
        return result, forwarded

    # hot path: per span
    def _dispatch(
        self, result: BatchResult, view: AgentSpan, span: Span | None, now: float
    ) -> None:
        """One valid span after classification: enrichers (``span``: the protobuf to write;
        None only where no enricher applies), hooks, observers, taps."""
        attrs = view.attrs
        kind = view.kind
        role_key = c.AGENT_SRE_ROLE
        if role_key in attrs:  # a second view of an LLM call: never counted
            self._second_view(result, attrs)
            for tap in self.taps:
                tap(view, now)
            return
        enriched = False
        if self.llm_enrichers and kind is AgentSpanKind.LLM_INFERENCE:
            assert span is not None
            enriched = True
            for enrich in self.llm_enrichers:
                enrich(span, view, now)
        elif self.task_hooks and kind is AgentSpanKind.AGENT_TASK:
            for hook in self.task_hooks:
                hook(view, now)
        elif self.tool_enrichers and kind in _ENRICHED_CALLS:
            assert span is not None
            enriched = True
            for enrich in self.tool_enrichers:
                enrich(span, view, now)
        if enriched and role_key in attrs:  # an enricher marked it
            self._second_view(result, attrs)
            for tap in self.taps:
                tap(view, now)
            return
        by_kind = result.by_kind
        by_kind[kind] = by_kind.get(kind, 0) + 1
        for observe in self.observers:
            observe(view, now)
        for tap in self.taps:
            tap(view, now)

    @staticmethod
    def _second_view(result: BatchResult, attrs: dict[str, AttrValue]) -> None:
        role = str(attrs[c.AGENT_SRE_ROLE])
        result.by_role[role] = result.by_role.get(role, 0) + 1


_KIND_TABLES = (
    c.AGENT_SPAN_KIND,
    c.GEN_AI_OPERATION_NAME,
    c.OPENINFERENCE_SPAN_KIND,
    c.TRACELOOP_SPAN_KIND,
    {kind.value: kind for kind in AgentSpanKind if kind is not AgentSpanKind.OTHER},
    dict(c.GEN_AI_OPERATION_KINDS),
    dict(c.OPENINFERENCE_KINDS),
    dict(c.TRACELOOP_KINDS),
    AgentSpanKind.OTHER,
)
"""What the native scan classifies by: the exact matches of :func:`classify`'s tables (a
value they miss that Python's case mapping might match is left to :func:`classify`)."""

_KIND_ATTRIBUTE = {kind: encode_attribute(c.AGENT_SPAN_KIND, kind.value) for kind in AgentSpanKind}
"""``agent.span.kind`` as the native pass appends it to a span an enricher may write."""


def _one_span(request: ExportTraceServiceRequest) -> bool:
    resources = request.resource_spans
    if len(resources) != 1:
        return False
    scopes = resources[0].scope_spans
    return len(scopes) == 1 and len(scopes[0].spans) == 1
