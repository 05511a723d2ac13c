"""The native span pass (over the request's bytes) against the Python one (the reference):
for generated requests, including wire shapes only a hand-made encoder sends (repeated
fields that merge, unknown fields, a resource in two pieces), and for the span shapes of the
real SDKs and instrumentations, both give the same classification, the same views to the
observers, taps, hooks and enrichers, the same trace index rows and the same forwarded
request."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agent_sre.tracing.batch import NATIVE
from agent_sre.tracing.view import CORE_KEYS
from tests.support.spans import make_request
from tests.support.wire import assert_same, native_pass

if not NATIVE:
    if shutil.which("cc") and not os.environ.get("AGENT_SRE_NO_NATIVE"):
        pytest.fail(
            "a C compiler is here but the native span pass is not built: reinstall"
            " (pip install -e .) and read the build's warning",
            pytrace=False,
        )
    pytest.skip("the native span pass is not built (no C compiler)", allow_module_level=True)

# -- a small encoder, so the requests can carry what protobuf's serializer never writes --


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


UNKNOWN = varint(99 << 3) + varint(7)  # field 99, a varint: kept by both passes

KEYS = sorted(
    CORE_KEYS
    | {
        "x",
        "",
        "error.type",
        "agent_sre.role",
        "agent_sre.node",
        "k8s.node.name",
        "agent_sre.chaos.fault",
        "agent_sre.slo.bad",
        "agent_sre.incident.id",
        "traceloop.span.kind",
        "http.method",
    }
)
KIND_WORDS = [
    "AGENT_TASK", "agent_task", "Tool_Call", "LLM_INFERENCE", "OTHER", "other", "NONSENSE",
    "chat", "execute_tool", "invoke_agent", "retrieval", "LLM", "llm", "Tool", "TOOL",
    "GUARDRAIL", "CHAIN", "agent", "Agent", "WORKFLOW", "workflow", "tool",
    "agent_taſk", "ſ", "\u212aind", "İ", "ﬀ", "gpt-4o-mini", "claude-sonnet-4-0",
    "openai", "deny", "duplicate",
]  # fmt: skip

CLASSIFY = [
    "agent.span.kind", "gen_ai.operation.name", "openinference.span.kind", "traceloop.span.kind"
]  # fmt: skip


@st.composite
def scalars(draw: st.DrawFn) -> object:
    which = draw(st.integers(min_value=0, max_value=7))
    if which == 0:
        return draw(st.text(max_size=6))
    if which == 1:
        return draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    if which == 2:
        return draw(st.integers(min_value=0, max_value=5000))
    if which == 3:
        return draw(st.floats(allow_nan=True, allow_infinity=True))
    if which == 4:
        return draw(st.sampled_from([float("nan"), float("inf"), -1e15, 1e15, 1.0000001e15, 0.25]))
    if which == 5:
        return draw(st.booleans())
    return draw(st.sampled_from(KIND_WORDS))


@st.composite
def any_values(draw: st.DrawFn) -> bytes:
    """An AnyValue: a scalar, an array, nothing, or two occurrences that merge."""
    shape = draw(st.integers(min_value=0, max_value=9))
    value = AnyValue()
    if shape == 0:
        pass  # no oneof set
    elif shape == 1:
        value.array_value.values.add().string_value = draw(st.sampled_from(KIND_WORDS))
    elif shape == 2:
        value.bytes_value = draw(st.binary(max_size=4))
    else:
        scalar = draw(scalars())
        if isinstance(scalar, bool):
            value.bool_value = scalar
        elif isinstance(scalar, int):
            value.int_value = scalar
        elif isinstance(scalar, float):
            value.double_value = scalar
        else:
            value.string_value = scalar
    encoded = field(2, value.SerializeToString())
    if draw(st.integers(min_value=0, max_value=6)) == 0:  # a second occurrence: merged
        encoded += field(
            2, AnyValue(string_value=draw(st.sampled_from(KIND_WORDS))).SerializeToString()
        )
    return encoded


@st.composite
def key_values(draw: st.DrawFn) -> bytes:
    which = draw(st.integers(min_value=0, max_value=5))
    if which < 2:
        key = draw(st.sampled_from(CLASSIFY))
    elif which < 5:
        key = draw(st.sampled_from(KEYS))
    else:
        key = draw(st.text(max_size=4))
    body = field(1, key.encode())
    if draw(st.integers(min_value=0, max_value=8)) == 0:
        body += UNKNOWN
    if key in CLASSIFY and draw(st.booleans()):
        word = draw(st.sampled_from(KIND_WORDS))
        return body + field(2, AnyValue(string_value=word).SerializeToString())
    return body + draw(any_values())


def ids(size: int) -> st.SearchStrategy[bytes]:
    """Mostly valid ids (some shared, so trace index rows merge), some malformed."""
    return st.integers(min_value=0, max_value=11).flatmap(
        lambda which: (
            st.just(bytes(size))
            if which == 0
            else st.binary(max_size=size + 1)
            if which == 1
            else st.sampled_from([b"\x01" * size, b"\x02" * size])
            if which < 5
            else st.binary(min_size=size, max_size=size).filter(any)
        )
    )


ids16 = ids(16)
ids8 = ids(8)


@st.composite
def spans(draw: st.DrawFn) -> bytes:
    span = Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        parent_span_id=draw(st.one_of(st.just(b""), ids8)),
        name=draw(st.text(max_size=5)),
        start_time_unix_nano=draw(st.integers(min_value=0, max_value=2**64 - 1)),
        end_time_unix_nano=draw(st.integers(min_value=0, max_value=2**64 - 1)),
        kind=draw(st.integers(min_value=0, max_value=5)),  # type: ignore[arg-type]
    )
    code = draw(st.sampled_from([0, 1, 2, 2, 7, -1]))
    if code:
        span.status.code = code  # type: ignore[assignment]
    encoded = span.SerializeToString()
    for kv in draw(st.lists(key_values(), max_size=7)):
        encoded += field(9, kv)
    extra = draw(st.integers(min_value=0, max_value=12))
    if extra == 0:  # a second status: merged, the last code wins
        encoded += field(15, Status(code=Status.STATUS_CODE_ERROR).SerializeToString())
    elif extra == 1:  # the ids again: the last occurrence wins
        encoded += field(2, draw(ids8)) + field(1, draw(ids16))
    elif extra == 2:
        encoded += UNKNOWN
    return encoded


@st.composite
def resources(draw: st.DrawFn) -> bytes:
    shape = draw(st.integers(min_value=0, max_value=4))
    if shape == 0:
        return b""  # no resource at all: the pass adds one
    pieces = [
        b"".join(field(1, kv) for kv in draw(st.lists(key_values(), max_size=4)))
        for _ in range(2 if shape == 1 else 1)  # two occurrences merge
    ]
    if draw(st.booleans()):
        pieces[0] += field(
            1, KeyValue(key="agent_sre.node", value=AnyValue(int_value=3)).SerializeToString()
        )
    if shape == 2:
        pieces[-1] += Resource(dropped_attributes_count=2).SerializeToString() + UNKNOWN
    return b"".join(field(1, piece) for piece in pieces)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    body = b""
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        resource_spans = draw(resources())
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            scope = field(1, b"\x0a\x01s") if draw(st.booleans()) else b""
            for span in draw(st.lists(spans(), max_size=5)):
                scope += field(2, span)
            resource_spans += field(2, scope)
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            resource_spans += field(3, b"https://schema") + UNKNOWN
        body += field(1, resource_spans)
    return body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_requests_give_the_same_results(body: bytes) -> None:
    ExportTraceServiceRequest.FromString(body)  # what the receivers accept
    assert_same(body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_requests_without_engines(body: bytes) -> None:
    """Only classification and pricing: the shipped configuration with no SLO."""
    assert_same(body, engines=False)


def test_the_bench_request_gives_the_same_results() -> None:
    assert_same(make_request(512).SerializeToString())


def test_a_request_that_is_not_protobuf_is_refused_not_read_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="malformed"):
        native_pass(field(1, field(2, b"\x12\x7f")))  # a span longer than its scope


# The attribute shapes the real instrumentations write (the integration tests drive them for
# real against the daemon, which runs the native pass): OpenAI v2 (GenAI conventions),
# OpenInference, pydantic-ai, OpenLLMetry, the daemon's own proxy spans; encoded by the
# OpenTelemetry SDK's own OTLP encoder, events, links, arrays and error statuses included.
SDK_SHAPES: list[tuple[str, dict[str, object]]] = [
    (
        "chat gpt-4o-mini",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 3,
            "server.address": "127.0.0.1",
            "server.port": 8790,
        },
    ),
    (
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 12,
            "llm.token_count.completion": 3,
            "llm.token_count.total": 15,
            "input.mime_type": "application/json",
            "llm.invocation_parameters": '{"temperature": 0}',
        },
    ),
    (
        "agent run",
        {
            "gen_ai.agent.name": "support",
            "agent_name": "support",
            "model_name": "gpt-4o-mini",
            "logfire.msg": "support run",
            "gen_ai.usage.input_tokens": 40,
            "gen_ai.usage.output_tokens": 9,
        },
    ),
    ("running tool", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
    ("search.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "search"}),
    ("workflow", {"traceloop.span.kind": "workflow", "agent.id": "a1"}),
    (
        "POST /openai/v1/chat/completions",
        {
            "agent.span.kind": "LLM_INFERENCE",
            "agent.id": "a1",
            "agent.task.id": "t1",
            "agent_sre.proxy.route": "openai",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "agent_sre.cost_usd": 0.00012,
            "agent_sre.role": "gateway",
            "error.type": "budget_exceeded",
        },
    ),
    ("task", {"agent.span.kind": "AGENT_TASK", "agent.task.success": False, "x": 1.5}),
]


def test_the_sdk_span_shapes_give_the_same_results() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=SdkResource.create({"service.name": "agent", "agent.id": "from-resource"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("root", attributes={"agent.span.kind": "AGENT_TASK"}):
        for index, (name, attributes) in enumerate(SDK_SHAPES):
            with tracer.start_as_current_span(name, attributes=attributes) as span:  # type: ignore[arg-type]
                span.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
                if index % 3 == 0:
                    span.set_status(Status(StatusCode.ERROR, "boom"))
                    span.add_link(span.get_span_context(), {"k": "v"})
    request = encode_spans(exporter.get_finished_spans())
    assert_same(request.SerializeToString())
    assert_same(request.SerializeToString(), engines=False)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), scalars())
def test_an_appended_attribute_is_encoded_as_protobuf_encodes_it(key: str, value: object) -> None:
    from agent_sre.tracing.wirespan import encode_attribute
    from tests.support.spans import set_value

    expected = Span()
    set_value(expected.attributes.add(key=key), value)
    ours = Span.FromString(encode_attribute(key, value))  # type: ignore[arg-type]
    assert ours.SerializeToString() == expected.SerializeToString()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.floats(allow_nan=True, allow_infinity=True))
def test_a_double_attribute_built_once_encodes_as_encode_attribute(key: str, value: float) -> None:
    """Pricing writes its cost with the key's bytes built once: the same bytes as the general
    encoder, for every key and every float (NaN, infinities, -0.0 included)."""
    from agent_sre.tracing.wirespan import double_attribute, encode_attribute

    assert double_attribute(key)(value) == encode_attribute(key, value)
