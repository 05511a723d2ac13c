"""Property tests of the span pass: any decodable request is processed without raising,
every span is either kept or rejected, and what is kept is well formed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre.cost.pricing import Pricer
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
from agent_sre.tracing.batch import TraceBatchProcessor
from agent_sre.tracing.view import CORE_KEYS
from tests.support.spans import set_value

KEYS = sorted(CORE_KEYS) + ["x", ""]
values = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.sampled_from(["AGENT_TASK", "chat", "execute_tool", "LLM", "gpt-4o-mini", "deny"]),
)
spans = st.lists(
    st.tuples(
        st.binary(min_size=0, max_size=17),
        st.binary(min_size=0, max_size=9),
        st.binary(min_size=0, max_size=9),
        st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=6),
        st.integers(min_value=0, max_value=2),
    ),
    max_size=6,
)


def build(
    span_specs: list[tuple[bytes, bytes, bytes, list[tuple[str, object]], int]],
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id, parent, attrs, status in span_specs:
        span = scope.spans.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent)
        span.status.code = status  # type: ignore[assignment]
        for key, value in attrs:
            kv = span.attributes.add(key=key)
            set_value(kv, value)
    return request


def processor() -> TraceBatchProcessor:
    return TraceBatchProcessor(
        {"agent_sre.node": "n"},
        observers=[lambda view, now: None],
        llm_enrichers=[SpanCostEnricher(Pricer())],
        enricher_keys=PRICING_KEYS,
    )


@settings(max_examples=200, deadline=None)
@given(spans)
def test_every_span_is_kept_or_rejected_and_kept_ones_are_valid(specs: list) -> None:  # type: ignore[type-arg]
    request = build(specs)
    result = processor().process(request, 1_760_000_000.0)
    assert result.accepted + result.rejected == len(specs)
    kept = request.resource_spans[0].scope_spans[0].spans
    assert len(kept) == result.accepted
    for span in kept:
        assert len(span.trace_id) == 16 and any(span.trace_id)
        assert len(span.span_id) == 8 and any(span.span_id)
        assert len(span.parent_span_id) in (0, 8)
    if result.rejected:
        assert result.error_message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_wire_bytes(body: bytes) -> None:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except Exception:  # noqa: BLE001 - undecodable input is the receiver's 400, tested there
        return
    processor().process(request, 0.0)
