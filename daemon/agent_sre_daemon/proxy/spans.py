"""The OTLP span of one proxied call (GenAI conventions), as an export request.

Only the attributes listed here are written: request and response headers and bodies never
reach a span, so credentials cannot leak through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agent_sre.tracing import conventions as conv

if TYPE_CHECKING:
    from agent_sre.gateway.identity import TraceContext
    from agent_sre.gateway.plan import CallPlan
    from agent_sre.replay.redaction import Redactor

SCOPE_NAME = "agent_sre.proxy"
TTFT_SECONDS = "agent_sre.ttft_seconds"
COST_ESTIMATED = "agent_sre.cost.estimated"
COST_UNPRICED = "agent_sre.cost.unpriced"
USAGE_INVALID = "agent_sre.usage.invalid"
"""Why the usage the upstream reported was not booked (the call settled at its reservation)."""
PROXY_ROUTE = "agent_sre.proxy.route"
DECIDED_BY = "agent_sre.decided_by"
"""Who gave the call's answer: upstream, refusal, chaos, replay (:class:`DecidedBy`)."""


@dataclass
class CallRecord:
    """Everything the span says about a call; filled in as the call goes."""

    route: str
    kind: str | None
    """``agent.span.kind`` (LLM_INFERENCE, TOOL_CALL) or None for unpriced pass-through."""
    name: str
    start_ns: int
    end_ns: int = 0
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)
    error: str | None = None
    """``error.type`` when the call failed (HTTP status, a refusal type, tool_error...)."""
    error_message: str = ""


def new_record(route: str, plan: CallPlan, method: str, start_ns: int) -> CallRecord:
    """The record of a call just received: its kind and name from the plan."""
    if plan.delegation:
        kind: str | None = conv.AgentSpanKind.DELEGATION.value
        name = f"{plan.operation} {plan.callee}"
    elif plan.operation == "execute_tool":
        kind = conv.AgentSpanKind.TOOL_CALL.value
        name = f"execute_tool {plan.tool_name}"
    elif plan.operation is not None:
        kind = conv.AgentSpanKind.LLM_INFERENCE.value
        name = f"{plan.operation} {plan.model}".strip()
    else:
        kind, name = None, plan.rpc_method or method
    return CallRecord(route, kind, name, start_ns)


# hot path: per proxied call
def redact_record(record: CallRecord, redactor: Redactor) -> None:
    """Takes credentials out of what a client chose in a call's span (the model and tool
    names, the task id, an error message echoing a header...) before the span exists, so
    the spans the daemon makes reach no queue or store with one. One scan of the strings
    decides; only a call that may hold one is redacted string by string."""
    attributes = record.attributes
    strings = [v for v in attributes.values() if isinstance(v, str)]
    joined = "\n".join((record.name, record.error_message, *strings))
    if not redactor.finds(joined.encode("utf-8", "surrogatepass")):
        return
    text = redactor.redact_text
    record.name = text(record.name)
    record.error_message = text(record.error_message)
    for key, value in attributes.items():
        if isinstance(value, str):
            attributes[key] = text(value)


def resource_of(attributes: dict[str, str]) -> Resource:
    """The resource every proxy span carries (built once)."""
    resource = Resource()
    _add_attrs(resource.attributes, attributes)
    return resource


# hot path: per proxied call
def build_request(
    record: CallRecord, trace: TraceContext, resource: Resource
) -> ExportTraceServiceRequest:
    """One ResourceSpans holding the call's span, parented to the caller's traceparent."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.CopyFrom(resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    span = scope_spans.spans.add()
    span.trace_id = trace.trace_id
    span.span_id = trace.span_id
    if trace.parent_span_id:
        span.parent_span_id = trace.parent_span_id
    span.flags = 0x100 | (0x200 if trace.parent_span_id else 0)  # has-is-remote, is-remote
    span.name = record.name
    span.kind = Span.SPAN_KIND_CLIENT
    span.start_time_unix_nano = record.start_ns
    span.end_time_unix_nano = record.end_ns or record.start_ns
    attributes = record.attributes
    attributes[PROXY_ROUTE] = record.route
    if record.kind is not None:
        attributes[conv.AGENT_SPAN_KIND] = record.kind
    if record.error is not None:
        attributes["error.type"] = record.error
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = record.error_message[:512]
    _add_attrs(span.attributes, attributes)
    return request


_VALUE_FIELD = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value"}


def _add_attrs(target: Any, values: dict[str, str] | dict[str, str | int | float | bool]) -> None:
    for key, value in values.items():
        item = target.add(key=key)
        setattr(item.value, _VALUE_FIELD[type(value)], value)
