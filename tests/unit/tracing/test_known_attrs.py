"""The proxy's span of a call goes through the span pass with the attributes it was built
from, instead of their being read back from the span: the same result, views, enrichment and
bytes as reading them back, whatever the attributes (any key, any scalar, numbers the gate
refuses)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.cost.pricing import Pricer
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
from agent_sre.gateway.identity import TraceContext
from agent_sre.tracing import conventions as c
from agent_sre.tracing.batch import TraceBatchProcessor
from agent_sre.tracing.view import CLASSIFY_KEYS, CORE_KEYS
from agent_sre_daemon.proxy.spans import CallRecord, build_request, resource_of

KEYS = sorted(
    CLASSIFY_KEYS
    | CORE_KEYS
    | PRICING_KEYS
    | {"http.response.status_code", "server.address", "url.path", "unwanted.key", "x"}
)
SCALARS = st.one_of(
    st.text(max_size=12),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1e300, 0.0, 12.5]),
    st.sampled_from(["chat", "LLM_INFERENCE", "TOOL_CALL", "gpt-4o-mini", "openai", "anthropic"]),
)
RECORDS = st.builds(
    lambda kind, error, attrs: (kind, error, attrs),
    st.sampled_from([None, "LLM_INFERENCE", "TOOL_CALL", "DELEGATION"]),
    st.sampled_from([None, "500", "budget_exceeded"]),
    st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=14),
)


def made(kind: str | None, error: str | None, attrs: dict[str, Any]) -> tuple[Any, Any]:
    record = CallRecord("openai", kind, "chat gpt-4o-mini", 1_760_000_000_000_000_000)
    record.end_ns = record.start_ns + 5_000_000
    record.attributes.update(attrs)
    record.error = error
    trace = TraceContext(trace_id=b"\x01" * 16, parent_span_id=b"", span_id=b"\x02" * 8, flags=1)
    resource = resource_of({"service.name": "agent-sre-proxy", c.AGENT_SRE_NODE: "n"})
    request = build_request(record, trace, resource)
    return request, dict(record.attributes)


def passed(request: Any, known: dict[str, Any] | None) -> tuple[Any, ...]:
    views: list[tuple[Any, ...]] = []
    unpriced: list[str] = []
    processor = TraceBatchProcessor(
        {c.AGENT_SRE_NODE: "n"},
        observers=[lambda view, now: views.append((view.kind, dict(view.attrs)))],
        wanted=frozenset(KEYS) - {"unwanted.key"},
        llm_enrichers=[SpanCostEnricher(Pricer(), unpriced.append)],
        enricher_keys=PRICING_KEYS,
    )
    result = processor.process(request, 1_760_000_000.0, known)
    return (
        result.accepted, result.rejected, result.by_kind, result.by_role, result.first_problem,
        result.ignored_values, _comparable(views), unpriced, request.SerializeToString(),
    )  # fmt: skip


def _comparable(views: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # NaN is never equal to itself: compare it by name
    return [
        (kind, {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in a.items()})
        for kind, a in views
    ]


@settings(max_examples=400, deadline=None)
@given(RECORDS)
def test_the_attributes_a_span_was_built_from_pass_as_reading_them_back(
    shape: tuple[Any, ...],
) -> None:
    read_back, attrs = made(*shape)
    handed, _ = made(*shape)
    assert passed(handed, attrs) == passed(read_back, None)


def test_known_attributes_are_ignored_for_a_request_of_more_than_one_span() -> None:
    request, attrs = made("LLM_INFERENCE", None, {"gen_ai.request.model": "gpt-4o-mini"})
    other = request.resource_spans[0].scope_spans[0].spans.add()
    other.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    other.span_id = b"\x03" * 8
    lying = {**attrs, "gen_ai.request.model": "claude-sonnet-4"}  # not what the spans say
    result = passed(request, lying)
    assert result[0] == 2
    assert all(view[1]["gen_ai.request.model"] == "gpt-4o-mini" for view in result[6])
