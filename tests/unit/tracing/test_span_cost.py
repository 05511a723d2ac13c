"""Received LLM spans are priced from their token usage, before the SLOs see them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre.cost.pricing import Pricer
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
from agent_sre.tracing.batch import TraceBatchProcessor
from tests.support.spans import set_value

if TYPE_CHECKING:
    from agent_sre.tracing.view import AgentSpan


def request_with(**attrs: object) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
    for key, value in attrs.items():
        kv = span.attributes.add()
        kv.key = key
        set_value(kv, value)
    return request


def span_attrs(request: ExportTraceServiceRequest) -> dict[str, object]:
    span = request.resource_spans[0].scope_spans[0].spans[0]
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


def run(request: ExportTraceServiceRequest, unpriced: list[str]) -> list[AgentSpan]:
    seen: list[AgentSpan] = []
    processor = TraceBatchProcessor(
        {},
        observers=[lambda view, now: seen.append(view)],
        llm_enrichers=[SpanCostEnricher(Pricer(), unpriced.append)],
        enricher_keys=PRICING_KEYS,
    )
    processor.process(request, 1_760_000_000.0)
    return seen


def test_priced_from_usage_and_visible_to_observers() -> None:
    request = request_with(
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500,
        }
    )
    unpriced: list[str] = []
    seen = run(request, unpriced)
    expected = float(
        calc_price(
            Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini", provider_id="openai"
        ).total_price
    )
    assert span_attrs(request)["agent_sre.cost_usd"] == pytest.approx(expected)
    assert seen[0].attrs["agent_sre.cost_usd"] == pytest.approx(expected)
    assert unpriced == []


def test_existing_cost_is_kept_and_unknown_model_is_counted_not_zero() -> None:
    kept = request_with(
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 10,
            "agent_sre.cost_usd": "n/a",
        }
    )
    run(kept, [])
    assert [k for k in span_attrs(kept) if k == "agent_sre.cost_usd"] == ["agent_sre.cost_usd"]

    unknown = request_with(
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "my-private-llm",
            "gen_ai.usage.input_tokens": 10,
        }
    )
    unpriced: list[str] = []
    run(unknown, unpriced)
    assert unpriced == ["my-private-llm"]
    assert "agent_sre.cost_usd" not in span_attrs(unknown)


def test_spans_without_usage_or_not_llm_are_untouched() -> None:
    for attrs in (
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 5,
        },
    ):
        request = request_with(**attrs)
        run(request, [])
        assert "agent_sre.cost_usd" not in span_attrs(request)
