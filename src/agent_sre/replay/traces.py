"""Trace assembly: splitting an accepted request by trace, summarising each part for the
index, putting a trace's parts back together and writing it as OTLP JSON.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from agent_sre.tracing import conventions as conv

KINDS: tuple[str, ...] = ("AGENT_TASK", "TOOL_CALL", "LLM_INFERENCE", "DELEGATION",
                          "POLICY_CHECK", "OTHER")  # fmt: skip
"""Bit ``i`` of a summary's ``kinds`` is ``KINDS[i]``."""

INTERESTING: tuple[str, ...] = ("error", "chaos_fault", "refusal", "slo_bad", "incident")
"""Bit ``i`` of a summary's ``interesting`` is the reason ``INTERESTING[i]``: such traces
are kept for ``replay.keep_interesting_for``."""

REFUSALS = frozenset({"budget_exceeded", "agent_blocked", "agent_throttled",
                      "budget_unavailable"})  # fmt: skip
_AGENT_KEYS = (conv.AGENT_ID, conv.GEN_AI_AGENT_ID, conv.GEN_AI_AGENT_NAME)
_ERROR = Status.STATUS_CODE_ERROR


@dataclass
class TraceSummary:
    """What the index keeps of one trace's spans in one request."""

    trace_id: str
    start_ns: int = 0
    end_ns: int = 0
    spans: int = 0
    errors: int = 0
    agent: str = ""
    root: str = ""
    kinds: int = 0
    interesting: int = 0
    cost_usd: float = 0.0


@dataclass
class TracePart:
    """One trace's spans of one request, as bytes, with its summary."""

    summary: TraceSummary
    body: bytes
    span_count: int = field(default=0)


def split_by_trace(request: ExportTraceServiceRequest) -> list[TracePart]:
    """The request cut into one part per trace id (a request of one trace is not copied)."""
    summaries: dict[bytes, TraceSummary] = {}
    for resource_spans in request.resource_spans:
        resource_agent = _agent(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                summary = summaries.get(span.trace_id)
                if summary is None:
                    summary = summaries[span.trace_id] = TraceSummary(span.trace_id.hex())
                _add_span(summary, span, resource_agent)
    if len(summaries) == 1:
        (summary,) = summaries.values()
        return [TracePart(summary, request.SerializeToString(), summary.spans)]
    parts: list[TracePart] = []
    for trace_id, summary in summaries.items():
        part = ExportTraceServiceRequest()
        for resource_spans in request.resource_spans:
            target = None
            for scope_spans in resource_spans.scope_spans:
                spans = [s for s in scope_spans.spans if s.trace_id == trace_id]
                if not spans:
                    continue
                if target is None:
                    target = part.resource_spans.add()
                    target.resource.CopyFrom(resource_spans.resource)
                    target.schema_url = resource_spans.schema_url
                scope_target = target.scope_spans.add()
                scope_target.scope.CopyFrom(scope_spans.scope)
                scope_target.schema_url = scope_spans.schema_url
                scope_target.spans.extend(spans)
        parts.append(TracePart(summary, part.SerializeToString(), summary.spans))
    return parts


def _add_span(summary: TraceSummary, span: Any, resource_agent: str) -> None:
    summary.spans += 1
    if not summary.start_ns or span.start_time_unix_nano < summary.start_ns:
        summary.start_ns = span.start_time_unix_nano
    summary.end_ns = max(summary.end_ns, span.end_time_unix_nano)
    if not span.parent_span_id:
        summary.root = span.name
    error = span.status.code == _ERROR
    kind = "OTHER"
    agent = ""
    for attribute in span.attributes:
        key = attribute.key
        if key == conv.AGENT_SPAN_KIND:
            kind = attribute.value.string_value
        elif key in _AGENT_KEYS and not agent:
            agent = attribute.value.string_value
        elif key == "error.type":
            error = True
            if attribute.value.string_value in REFUSALS:
                summary.interesting |= 1 << 2
        elif key == conv.AGENT_SRE_CHAOS_FAULT:
            summary.interesting |= 1 << 1
        elif key == conv.AGENT_SRE_COST_USD:
            summary.cost_usd += attribute.value.double_value
        elif key == "agent_sre.slo.bad" and attribute.value.bool_value:
            summary.interesting |= 1 << 3
        elif key == "agent_sre.incident.id":
            summary.interesting |= 1 << 4
    if error:
        summary.errors += 1
        summary.interesting |= 1
    if kind in KINDS:
        summary.kinds |= 1 << KINDS.index(kind)
    if not summary.agent:
        summary.agent = agent or resource_agent


def _agent(attributes: Any) -> str:
    for attribute in attributes:
        if attribute.key in _AGENT_KEYS:
            return str(attribute.value.string_value)
    return ""


def kind_names(bits: int) -> list[str]:
    return [name for i, name in enumerate(KINDS) if bits & (1 << i)]


def reasons(bits: int) -> list[str]:
    return [name for i, name in enumerate(INTERESTING) if bits & (1 << i)]


def assemble(parts: list[bytes]) -> ExportTraceServiceRequest:
    """One request holding every part of a trace, in the order stored."""
    whole = ExportTraceServiceRequest()
    for body in parts:
        whole.MergeFromString(body)
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

    def visit(row: SpanRow, depth: int) -> None:
        out.append(row.to_json(depth))
        for child in row.children:
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return out


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which in ("array_value", "kvlist_value", "bytes_value"):
        return json_format.MessageToDict(value).get(_CAMEL[which])
    return getattr(value, which)


_CAMEL = {"array_value": "arrayValue", "kvlist_value": "kvlistValue", "bytes_value": "bytesValue"}
