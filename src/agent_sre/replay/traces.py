"""Trace assembly: summarising each accepted request by trace for the index, putting a
trace's spans back together from the stored requests, OTLP JSON, span trees.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from agent_sre.numbers import MAX_SPAN_NS, clamp_span_ns
from agent_sre.replay.redaction import TEXT_MARK, credential_name
from agent_sre.tracing import conventions as conv
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import CLASSIFY_KEYS, classify, read_attrs, view_of

if TYPE_CHECKING:
    from agent_sre.replay.redaction import Redactor
    from agent_sre.tracing.view import AgentSpan, AttrValue

KINDS: tuple[str, ...] = ("AGENT_TASK", "TOOL_CALL", "LLM_INFERENCE", "DELEGATION",
                          "POLICY_CHECK", "OTHER")  # fmt: skip
"""Bit ``i`` of a summary's ``kinds`` is ``KINDS[i]``."""

INTERESTING: tuple[str, ...] = ("error", "chaos_fault", "refusal", "slo_bad", "incident")
"""Bit ``i`` of a summary's ``interesting`` is the reason ``INTERESTING[i]``: such traces
are kept for ``replay.keep_interesting_for``."""

REFUSALS = frozenset({"budget_exceeded", "agent_blocked", "agent_throttled",
                      "budget_unavailable"})  # fmt: skip
_ERROR = Status.STATUS_CODE_ERROR


AGENT_KEYS = (conv.AGENT_ID, conv.GEN_AI_AGENT_ID)

INDEX_KEYS: frozenset[str] = frozenset(
    {
        *AGENT_KEYS,
        "error.type",
        conv.AGENT_SRE_CHAOS_FAULT,
        conv.AGENT_SRE_COST_USD,
        conv.AGENT_SRE_ROLE,
        "agent_sre.slo.bad",
        "agent_sre.incident.id",
    }
)
"""Attributes the trace index reads from every span's view. The agent (:data:`AGENT_KEYS`,
the span's own or else its resource's) is taken from the first span of each trace in a
request, or from an agent-task span when that one named none."""


@dataclass(slots=True)
class TraceSummary:
    """What the index keeps of one trace's spans in one request."""

    trace_id: str
    start_ns: int = 0
    end_ns: int = 0
    spans: int = 0
    errors: int = 0
    agent: str = ""
    root: str = ""
    """The name of its earliest span (the root, when the root is in the trace)."""
    kinds: int = 0
    interesting: int = 0
    cost_usd: float = 0.0


class TraceIndex:
    """Summarises the spans of one request by trace: a span tap of the pipeline's one pass
    over the request (no view is built, no second pass over the protobuf)."""

    def __init__(self) -> None:
        self.summaries: dict[bytes, TraceSummary] = {}

    # hot path: per span
    def tap(self, view: AgentSpan, now: float) -> None:
        trace_id = view.trace_id
        start_ns = view.start_ns
        end_ns = view.end_ns
        if end_ns > MAX_SPAN_NS or start_ns > MAX_SPAN_NS:  # the numbers gate of span times
            start_ns, end_ns = clamp_span_ns(start_ns), clamp_span_ns(end_ns)
        attrs = view.attrs
        kind = view.kind
        summary = self.summaries.get(trace_id)
        if summary is None:
            summary = self.summaries[trace_id] = TraceSummary(
                trace_id.hex(), start_ns, end_ns, root=view.name, agent=_agent(attrs)
            )
        else:
            if start_ns < summary.start_ns:
                summary.start_ns = start_ns
                summary.root = view.name
            if end_ns > summary.end_ns:
                summary.end_ns = end_ns
            if not summary.agent and kind is _TASK:
                summary.agent = _agent(attrs)
        summary.spans += 1
        summary.kinds |= _KIND_BIT[kind]
        if view.is_error or not _MARKERS.isdisjoint(attrs):
            _mark(summary, view.is_error, attrs)  # the rare span: an error, a fault, a cost...

    def take(self) -> list[TraceSummary]:
        """The summaries so far (and a fresh start)."""
        found = list(self.summaries.values())
        self.summaries = {}
        return found


def _mark(summary: TraceSummary, is_error: bool, attrs: dict[str, AttrValue]) -> None:
    """Adds what makes a span count beyond its kind: errors, reasons to keep, cost."""
    error_type = attrs.get("error.type")
    if error_type is not None or is_error:
        summary.errors += 1
        summary.interesting |= 1
        if error_type in REFUSALS:
            summary.interesting |= 4
    if conv.AGENT_SRE_CHAOS_FAULT in attrs:
        summary.interesting |= 2
    if attrs.get("agent_sre.slo.bad") is True:
        summary.interesting |= 8
    if "agent_sre.incident.id" in attrs:
        summary.interesting |= 16
    cost = attrs.get(conv.AGENT_SRE_COST_USD)
    if isinstance(cost, float) and conv.AGENT_SRE_ROLE not in attrs:
        summary.cost_usd += cost


def _agent(attrs: dict[str, AttrValue]) -> str:
    """The span's agent (its own or its resource's; :data:`INDEX_KEYS` has the keys)."""
    for key in AGENT_KEYS:
        agent = attrs.get(key)
        if isinstance(agent, str) and agent:
            return agent
    return ""


def summarize(request: ExportTraceServiceRequest) -> list[TraceSummary]:
    """The index summaries of a request read on its own (tests, tools)."""
    index = TraceIndex()
    for resource_spans in request.resource_spans:
        resource_attrs: dict[str, AttrValue] = {}
        read_attrs(resource_spans.resource.attributes, _WANTED, resource_attrs)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = resource_attrs.copy()
                read_attrs(span.attributes, _WANTED, attrs)
                kind, explicit = classify(attrs)
                index.tap(view_of(span, kind, explicit, attrs), 0.0)
    return index.take()


_WANTED = CLASSIFY_KEYS | INDEX_KEYS
_KIND_BIT = {AgentSpanKind(name): 1 << i for i, name in enumerate(KINDS)}
_TASK = AgentSpanKind.AGENT_TASK
_MARKERS = INDEX_KEYS - {conv.AGENT_SRE_ROLE, *AGENT_KEYS}


def redact_spans(request: ExportTraceServiceRequest, redactor: Redactor) -> None:
    """Redacts, in place, every field of a request a client chose: attribute keys and values
    (resource, scope, span, event, link; strings, bytes, nested lists and maps), a value
    under a name like a credential's whatever it is, span, event and scope names, status
    messages, trace states."""
    text = redactor.redact_text
    for resource_spans in request.resource_spans:
        _redact_attributes(resource_spans.resource.attributes, redactor)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope.name = text(scope.name)
            scope.version = text(scope.version)
            _redact_attributes(scope.attributes, redactor)
            for span in scope_spans.spans:
                span.name = text(span.name)
                span.trace_state = text(span.trace_state)
                span.status.message = text(span.status.message)
                _redact_attributes(span.attributes, redactor)
                for event in span.events:
                    event.name = text(event.name)
                    _redact_attributes(event.attributes, redactor)
                for link in span.links:
                    link.trace_state = text(link.trace_state)
                    _redact_attributes(link.attributes, redactor)


def _redact_attributes(attributes: Any, redactor: Redactor) -> None:
    for attribute in attributes:
        if credential_name(attribute.key):
            attribute.value.Clear()
            attribute.value.string_value = TEXT_MARK
        else:
            _redact_value(attribute.value, redactor)
        attribute.key = redactor.redact_text(attribute.key)


def _redact_value(value: Any, redactor: Redactor) -> None:
    which = value.WhichOneof("value")
    if which == "string_value":
        value.string_value = redactor.redact_text(value.string_value)
    elif which == "bytes_value":
        value.bytes_value = redactor.redact(value.bytes_value)
    elif which == "array_value":
        for item in value.array_value.values:
            _redact_value(item, redactor)
    elif which == "kvlist_value":
        _redact_attributes(value.kvlist_value.values, redactor)


def kind_names(bits: int) -> list[str]:
    return [name for i, name in enumerate(KINDS) if bits & (1 << i)]


def reasons(bits: int) -> list[str]:
    return [name for i, name in enumerate(INTERESTING) if bits & (1 << i)]


def assemble(batches: list[bytes], trace_id: str) -> ExportTraceServiceRequest:
    """One request holding the spans of trace ``trace_id`` (hex) from the stored requests
    that carry them, in the order stored (resources and scopes without its spans left out)."""
    wanted = bytes.fromhex(trace_id)
    whole = ExportTraceServiceRequest()
    for body in batches:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            target = None
            for scope_spans in resource_spans.scope_spans:
                spans = [s for s in scope_spans.spans if s.trace_id == wanted]
                if not spans:
                    continue
                if target is None:
                    target = whole.resource_spans.add()
                    target.resource.CopyFrom(resource_spans.resource)
                    target.schema_url = resource_spans.schema_url
                scope_target = target.scope_spans.add()
                scope_target.scope.CopyFrom(scope_spans.scope)
                scope_target.schema_url = scope_spans.schema_url
                scope_target.spans.extend(spans)
    return whole


def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON mapping (ids in hex, as the specification says, not base64)."""
    data = json_format.MessageToDict(request)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        if key in link:
                            link[key] = base64.b64decode(link[key]).hex()
    return data


def from_otlp_json(data: dict[str, Any]) -> ExportTraceServiceRequest:
    """Reads :func:`to_otlp_json`'s output (hex ids) back."""
    data = json.loads(json.dumps(data))
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)


@dataclass
class SpanRow:
    """A span as ``replay show`` and the diff read it."""

    span_id: str
    parent_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    error: str
    attributes: dict[str, Any]
    children: list[SpanRow] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def to_json(self, depth: int = 0) -> dict[str, Any]:
        a = self.attributes
        return {
            "depth": depth,
            "span_id": self.span_id,
            "name": self.name,
            "kind": self.kind,
            "duration_seconds": round(self.duration, 6),
            "model": a.get(conv.GEN_AI_RESPONSE_MODEL) or a.get(conv.GEN_AI_REQUEST_MODEL) or "",
            "input_tokens": a.get(conv.GEN_AI_USAGE_INPUT_TOKENS),
            "output_tokens": a.get(conv.GEN_AI_USAGE_OUTPUT_TOKENS),
            "cost_usd": a.get(conv.AGENT_SRE_COST_USD),
            "fault": a.get(conv.AGENT_SRE_CHAOS_FAULT, ""),
            "error": self.error,
        }


def span_tree(request: ExportTraceServiceRequest) -> list[SpanRow]:
    """The trace's spans as trees (roots: spans whose parent is not in the trace), children
    by start time."""
    rows: dict[str, SpanRow] = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = {a.key: _value(a.value) for a in span.attributes}
                error = ""
                if span.status.code == _ERROR or "error.type" in attributes:
                    error = str(attributes.get("error.type") or span.status.message or "error")
                rows[span.span_id.hex()] = SpanRow(
                    span.span_id.hex(),
                    span.parent_span_id.hex(),
                    span.name,
                    str(attributes.get(conv.AGENT_SPAN_KIND, "")),
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    error,
                    attributes,
                )
    roots = []
    for row in sorted(rows.values(), key=lambda r: (r.start_ns, r.name)):
        parent = rows.get(row.parent_id)
        if parent is None or parent is row:
            roots.append(row)
        else:
            parent.children.append(row)
    return roots


def flatten(roots: list[SpanRow]) -> list[dict[str, Any]]:
    """Rows for a table: each span with its depth, parents before children."""
    out: list[dict[str, Any]] = []
    stack = [(root, 0) for root in reversed(roots)]  # no recursion: chains run deep
    while stack:
        row, depth = stack.pop()
        out.append(row.to_json(depth))
        stack.extend((child, depth + 1) for child in reversed(row.children))
    return out


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which in ("array_value", "kvlist_value", "bytes_value"):
        return json_format.MessageToDict(value).get(_CAMEL[which])
    return getattr(value, which)


_CAMEL = {"array_value": "arrayValue", "kvlist_value": "kvlistValue", "bytes_value": "bytesValue"}
