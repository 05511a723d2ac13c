"""Builds OTLP trace requests for tests and benchmarks."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

KINDS = (
    {"agent.span.kind": "AGENT_TASK", "agent.task.success": True},
    {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
    },
    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
    {
        "openinference.span.kind": "LLM",
        "llm.model_name": "claude-sonnet-4-0",
        "llm.token_count.prompt": 900,
        "llm.token_count.completion": 200,
    },
    {"agent.span.kind": "DELEGATION", "agent.delegation.depth": 2},
    {"agent.span.kind": "POLICY_CHECK", "agent.policy.decision": "allow"},
    {"http.method": "GET"},
)


def set_value(kv: KeyValue, value: object) -> None:
    """Sets an attribute's AnyValue from a Python scalar."""
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)


def make_request(
    n: int,
    *,
    service: str = "agent",
    big_attribute: int = 0,
    attributes_per_span: int = 12,
    trace_id: bytes | None = None,
) -> ExportTraceServiceRequest:
    """``n`` spans of mixed agent kinds with about ``attributes_per_span`` attributes each."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    scope = rs.scope_spans.add()
    scope.scope.name = "tests"
    now = time.time_ns()
    tid = trace_id or os.urandom(16)
    for i in range(n):
        span = scope.spans.add()
        span.trace_id = tid
        span.span_id = os.urandom(8)
        span.name = f"span-{i}"
        span.kind = 1
        span.start_time_unix_nano = now - 5_000_000
        span.end_time_unix_nano = now
        attrs: dict[str, object] = {"agent.id": f"agent-{i % 4}", "agent.task.id": f"task-{i // 8}"}
        attrs.update(KINDS[i % len(KINDS)])
        filler = 0
        while len(attrs) < attributes_per_span:
            attrs[f"app.attr.{filler}"] = f"value-{filler}-{i}"
            filler += 1
        if big_attribute:
            attrs["big"] = "x" * big_attribute
        for key, value in attrs.items():
            kv = span.attributes.add()
            kv.key = key
            set_value(kv, value)
    return request


def llm_request(
    models: list[str],
    provider: str | None = "openai",
    input_tokens: int = 10,
    trace_id: bytes = b"\x01" * 16,
) -> ExportTraceServiceRequest:
    """One trace of chat spans, one a model, each with ``input_tokens`` of usage (and
    ``gen_ai.provider.name`` unless ``provider`` is None): what pricing reads, nothing else."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for index, model in enumerate(models):
        span = spans.add()
        span.trace_id, span.span_id = trace_id, (index + 1).to_bytes(8, "big")
        attrs: dict[str, object] = {"gen_ai.operation.name": "chat"}
        if provider is not None:
            attrs["gen_ai.provider.name"] = provider
        attrs["gen_ai.request.model"] = model
        attrs["gen_ai.usage.input_tokens"] = input_tokens
        for key, value in attrs.items():
            set_value(span.attributes.add(key=key), value)
    return request
