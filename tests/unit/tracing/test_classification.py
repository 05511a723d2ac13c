"""Table-driven: every convention the classifier knows, and what wins when several apply."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agent_sre.tracing.batch import TraceBatchProcessor, span_id_problem
from agent_sre.tracing.conventions import AgentSpanKind as K
from agent_sre.tracing.view import classify, read_span
from tests.support.spans import set_value

CASES = [
    # explicit agent.span.kind, any case
    ({"agent.span.kind": "AGENT_TASK"}, K.AGENT_TASK, True),
    ({"agent.span.kind": "tool_call"}, K.TOOL_CALL, True),
    ({"agent.span.kind": "LLM_INFERENCE"}, K.LLM_INFERENCE, True),
    ({"agent.span.kind": "DELEGATION"}, K.DELEGATION, True),
    ({"agent.span.kind": "POLICY_CHECK"}, K.POLICY_CHECK, True),
    # GenAI semantic conventions
    ({"gen_ai.operation.name": "invoke_agent"}, K.AGENT_TASK, False),
    ({"gen_ai.operation.name": "create_agent"}, K.AGENT_TASK, False),
    ({"gen_ai.operation.name": "chat"}, K.LLM_INFERENCE, False),
    ({"gen_ai.operation.name": "text_completion"}, K.LLM_INFERENCE, False),
    ({"gen_ai.operation.name": "generate_content"}, K.LLM_INFERENCE, False),
    ({"gen_ai.operation.name": "embeddings"}, K.LLM_INFERENCE, False),
    ({"gen_ai.operation.name": "execute_tool"}, K.TOOL_CALL, False),
    # OpenInference
    ({"openinference.span.kind": "AGENT"}, K.AGENT_TASK, False),
    ({"openinference.span.kind": "LLM"}, K.LLM_INFERENCE, False),
    ({"openinference.span.kind": "TOOL"}, K.TOOL_CALL, False),
    ({"openinference.span.kind": "GUARDRAIL"}, K.POLICY_CHECK, False),
    # OpenLLMetry
    ({"traceloop.span.kind": "agent"}, K.AGENT_TASK, False),
    ({"traceloop.span.kind": "tool"}, K.TOOL_CALL, False),
    # order of trust
    ({"agent.span.kind": "DELEGATION", "gen_ai.operation.name": "chat"}, K.DELEGATION, True),
    (
        {"gen_ai.operation.name": "execute_tool", "openinference.span.kind": "LLM"},
        K.TOOL_CALL,
        False,
    ),
    ({"agent.span.kind": "NONSENSE", "gen_ai.operation.name": "chat"}, K.LLM_INFERENCE, False),
    ({"agent.span.kind": "OTHER"}, K.OTHER, False),
    # nothing known
    ({}, K.OTHER, False),
    ({"gen_ai.operation.name": "retrieval"}, K.OTHER, False),
    ({"openinference.span.kind": "CHAIN"}, K.OTHER, False),
    ({"agent.span.kind": 3}, K.OTHER, False),
]


@pytest.mark.parametrize(("attrs", "kind", "explicit"), CASES)
def test_classify(attrs: dict[str, object], kind: K, explicit: bool) -> None:
    assert classify(attrs) == (kind, explicit)  # type: ignore[arg-type]


def _span(**attrs: object) -> Span:
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s")
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000_000_000, 3_500_000_000
    for key, value in attrs.items():
        kv = span.attributes.add()
        kv.key = key.replace("__", ".")
        set_value(kv, value)
    return span


def test_read_span_view_fields() -> None:
    span = _span(
        gen_ai__operation__name="chat",
        gen_ai__request__model="gpt-4o",
        gen_ai__usage__prompt_tokens=11,
        gen_ai__usage__output_tokens=7,
        gen_ai__system="openai",
        agent__task__id="t1",
        ignored__key="x",
    )
    span.status.code = 2
    view = read_span(span, resource_attrs={"agent.id": "from-resource"})
    assert view.kind is K.LLM_INFERENCE and not view.explicit_kind
    assert view.model == "gpt-4o"
    assert view.provider == "openai"
    assert view.input_tokens == 11 and view.output_tokens == 7
    assert view.agent_id == "from-resource"
    assert view.task_id == "t1"
    assert view.is_error
    assert view.duration_s == pytest.approx(2.5)
    assert "ignored.key" not in view.attrs


def test_span_attribute_overrides_resource() -> None:
    view = read_span(_span(agent__id="from-span"), resource_attrs={"agent.id": "from-resource"})
    assert view.agent_id == "from-span"


@pytest.mark.parametrize(
    ("trace_id", "span_id", "parent", "problem"),
    [
        (b"\x01" * 16, b"\x02" * 8, b"", ""),
        (b"\x01" * 16, b"\x02" * 8, b"\x03" * 8, ""),
        (b"\x01" * 15, b"\x02" * 8, b"", "trace_id must be 16 bytes, got 15"),
        (bytes(16), b"\x02" * 8, b"", "trace_id is all zeros"),
        (b"\x01" * 16, b"\x02" * 4, b"", "span_id must be 8 bytes, got 4"),
        (b"\x01" * 16, bytes(8), b"", "span_id is all zeros"),
        (b"\x01" * 16, b"\x02" * 8, b"\x03" * 3, "parent_span_id must be empty or 8 bytes, got 3"),
    ],
)
def test_span_id_problems(trace_id: bytes, span_id: bytes, parent: bytes, problem: str) -> None:
    assert span_id_problem(trace_id, span_id, parent) == problem


def test_batch_enriches_in_place_and_drops_bad_spans() -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "agent_sre.node", "spoofed"
    spans = rs.scope_spans.add().spans
    spans.append(_span(gen_ai__operation__name="execute_tool"))
    spans.append(_span(agent__span__kind="AGENT_TASK"))
    bad = _span()
    bad.span_id = b"\x01"
    spans.append(bad)
    spans.append(_span(http__method="GET"))
    seen: list[K] = []
    result = TraceBatchProcessor(
        {"agent_sre.node": "n1", "k8s.pod.name": "p1"},
        observers=[lambda v, now: seen.append(v.kind)],
    ).process(request, 0.0)
    assert (result.accepted, result.rejected) == (3, 1)
    assert "span_id must be 8 bytes, got 1" in result.error_message
    assert seen == [K.TOOL_CALL, K.AGENT_TASK, K.OTHER]
    resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
    assert resource == {"agent_sre.node": "n1", "k8s.pod.name": "p1"}
    kinds = [
        [kv.value.string_value for kv in span.attributes if kv.key == "agent.span.kind"]
        for span in rs.scope_spans[0].spans
    ]
    # added where missing, never duplicated, never invented for OTHER
    assert kinds == [["TOOL_CALL"], ["AGENT_TASK"], []]
