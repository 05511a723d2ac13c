"""Gemini, Azure OpenAI, OpenAI-compatible servers and Bedrock as the proxy reads them:
plans from real request shapes, usage from real answers, and hostile figures refused
(never a crash, never a booked NaN)."""

from __future__ import annotations

import json
import math

import pytest

from agent_sre.chaos import shapes
from agent_sre.chaos.spec import FaultSpec
from agent_sre.chaos.targeting import CallFacts, applicable
from agent_sre.config import ProxyRoute
from agent_sre.cost.pricing import Pricer
from agent_sre.cost.usage import TokenUsage
from agent_sre.gateway.eventstream import EventStreamTap, encode_message
from agent_sre.gateway.providers import PROVIDERS, facts_from_json, plan_call
from agent_sre.gateway.sse import StreamTap, stream_tap

GEMINI = ProxyRoute(name="g", prefix="/g", upstream="http://x", api="gemini")
AZURE = ProxyRoute(
    name="az", prefix="/az", upstream="http://x", api="azure_openai", deployments={"prod": "gpt-4o"}
)
LOCAL = ProxyRoute(name="local", prefix="/l", upstream="http://x", api="openai_compatible")
BEDROCK = ProxyRoute(name="b", prefix="/b", upstream="http://x", api="bedrock")


def test_gemini_plans_from_the_path() -> None:
    body = b'{"contents":[],"generationConfig":{"maxOutputTokens":50,"candidateCount":2}}'
    plan = plan_call(GEMINI, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", body)
    assert (plan.provider, plan.operation, plan.model) == (
        "gcp.gemini",
        "generate_content",
        "gemini-2.5-flash",
    )
    assert (plan.max_output_tokens, plan.choices, plan.stream) == (50, 2, False)
    assert plan.pricing == "google"
    stream = plan_call(GEMINI, "POST", "/v1/models/m:streamGenerateContent", b"{}")
    assert stream.stream and stream.operation == "generate_content"
    vertex = "/v1/projects/p/locations/us/publishers/google/models/gemini-2.0-flash:generateContent"
    assert plan_call(GEMINI, "POST", vertex, b"{}").model == "gemini-2.0-flash"
    assert plan_call(GEMINI, "POST", "/v1beta/models/m:countTokens", b"{}").operation is None
    assert plan_call(GEMINI, "POST", "/v1beta/models/m:embedContent", b"{}").max_output_tokens == 0
    for odd in ("/v1beta/models", "/", "/v1beta/models/:x", "/::::"):
        assert not plan_call(GEMINI, "POST", odd, b"{}").llm_call
    # a method not listed is priced, never a way around a budget
    assert plan_call(GEMINI, "POST", "/v1beta/models/m:newMethod", b"{}").llm_call
    assert not plan_call(GEMINI, "GET", "/v1beta/models", b"").llm_call
    # a cap named twice: parsers disagree on which holds, so none is trusted
    twice = b'{"generationConfig":{"maxOutputTokens":5,"maxOutputTokens":500000}}'
    assert (
        plan_call(GEMINI, "POST", "/v1/models/m:generateContent", twice).max_output_tokens is None
    )


def test_gemini_usage_thoughts_and_cache() -> None:
    plan = plan_call(GEMINI, "POST", "/v1/models/m:generateContent", b"{}")
    answer = {
        "candidates": [{"content": {"parts": [{"text": "hey"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 10,
            "thoughtsTokenCount": 40,
            "cachedContentTokenCount": 60,
            "toolUsePromptTokenCount": 5,
        },
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "r-1",
    }
    facts = facts_from_json(plan, json.dumps(answer).encode())
    assert facts.usage == TokenUsage(input_tokens=105, output_tokens=50, cache_read_tokens=60)
    assert (facts.response_model, facts.response_id, facts.output_chars) == (
        "gemini-2.5-flash-001",
        "r-1",
        3,
    )


@pytest.mark.parametrize(
    "usage",
    [
        {"promptTokenCount": -1},
        {"promptTokenCount": 1.5},
        {"candidatesTokenCount": "12"},
        {"thoughtsTokenCount": True},
        {"cachedContentTokenCount": [1]},
    ],
)
def test_gemini_hostile_usage_is_a_problem_not_a_figure(usage) -> None:
    plan = plan_call(GEMINI, "POST", "/v1/models/m:generateContent", b"{}")
    facts = facts_from_json(plan, json.dumps({"usageMetadata": usage}).encode())
    assert facts.usage is None and facts.usage_problem


def test_gemini_nan_and_odd_shapes_never_crash() -> None:
    plan = plan_call(GEMINI, "POST", "/v1/models/m:generateContent", b"{}")
    for body in (
        b'{"usageMetadata":{"promptTokenCount":NaN}}',
        b'{"usageMetadata":"lots"}',
        b'{"candidates":"none","usageMetadata":null}',
        b'{"candidates":[{"content":{"parts":[1,{"functionCall":{"a":1}}]}}]}',
        b"[1,2]",
    ):
        facts = facts_from_json(plan, body)
        assert facts.usage is None or facts.usage.input_tokens >= 0
        if facts.usage is not None:
            assert not math.isnan(facts.usage.input_tokens)


def test_gemini_stream_crlf_events_and_a_cut() -> None:
    plan = plan_call(GEMINI, "POST", "/v1/models/m:streamGenerateContent", b"{}")
    tap = stream_tap(plan, "text/event-stream")
    assert isinstance(tap, StreamTap)

    def chunk(text: str, done: int, last: bool) -> bytes:
        data = {
            "candidates": [{"content": {"parts": [{"text": text}]}}],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": done},
        }
        if last:
            data["candidates"][0]["finishReason"] = "STOP"
        return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"

    stream = chunk("Hel", 1, False) + chunk("lo", 2, False) + b"data: {broken\r\n\r\n"
    for i in range(0, len(stream), 7):
        assert tap.feed(stream[i : i + 7]) == stream[i : i + 7]  # passed on untouched
    assert tap.facts.usage == TokenUsage(input_tokens=7, output_tokens=2)
    assert not tap.facts.usage_final  # no finishReason yet: a cut stream is estimated
    tap.feed(chunk("!", 3, True))
    assert tap.facts.usage_final and tap.facts.output_chars == 6


def test_azure_names_the_deployments_model() -> None:
    body = b'{"messages":[],"max_tokens":9}'
    plan = plan_call(AZURE, "POST", "/openai/deployments/prod/chat/completions", body)
    assert (plan.provider, plan.model, plan.pricing, plan.max_output_tokens) == (
        "azure.ai.openai",
        "gpt-4o",
        "azure",
        9,
    )
    unlisted = plan_call(AZURE, "POST", "/openai/deployments/gpt-4o-mini/embeddings", b"{}")
    assert (unlisted.model, unlisted.operation) == ("gpt-4o-mini", "embeddings")
    v1 = plan_call(AZURE, "POST", "/openai/v1/chat/completions", b'{"model":"prod"}')
    assert v1.model == "gpt-4o"
    assert PROVIDERS["azure_openai"].key_header("k") == ("api-key", "k")
    swapped = PROVIDERS["azure_openai"].with_model(
        plan, "/openai/deployments/prod/chat/completions", "canary"
    )
    assert swapped == (body, "/openai/deployments/canary/chat/completions")


def test_bedrock_plans_and_usage() -> None:
    body = b'{"messages":[],"inferenceConfig":{"maxTokens":64}}'
    path = "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse-stream"
    plan = plan_call(BEDROCK, "POST", path, body)
    assert (plan.model, plan.stream, plan.max_output_tokens, plan.pricing) == (
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        True,
        64,
        "aws",
    )
    assert not plan_call(BEDROCK, "POST", "/model/x/list", b"{}").llm_call
    assert not plan_call(BEDROCK, "POST", "/model//converse", b"{}").llm_call
    usage = {"inputTokens": 10, "outputTokens": 3, "cacheReadInputTokens": 4}
    facts = facts_from_json(plan, json.dumps({"usage": usage}).encode())
    assert facts.usage == TokenUsage(input_tokens=14, output_tokens=3, cache_read_tokens=4)
    hostile = facts_from_json(plan, b'{"usage":{"inputTokens":-5}}')
    assert hostile.usage is None and hostile.usage_problem == "inputTokens is negative"
    invoke = plan_call(BEDROCK, "POST", "/model/m/invoke", b'{"max_tokens":5}')
    facts = facts_from_json(invoke, b'{"usage":{"input_tokens":2,"output_tokens":1}}')
    assert facts.usage == TokenUsage(input_tokens=2, output_tokens=1)


def test_bedrock_event_stream_usage_in_flight() -> None:
    plan = plan_call(BEDROCK, "POST", "/model/m/converse-stream", b"{}")
    tap = stream_tap(plan, "application/vnd.amazon.eventstream")
    assert isinstance(tap, EventStreamTap)

    def event(name: str, payload: object) -> bytes:
        headers = {":event-type": name, ":message-type": "event"}
        return encode_message(headers, json.dumps(payload).encode())

    stream = (
        event("contentBlockDelta", {"delta": {"text": "Hello"}})
        + encode_message({":message-type": "exception"}, b'{"message":"x"}')
        + event("contentBlockDelta", "not an object")
        + event("metadata", {"usage": {"inputTokens": 9, "outputTokens": 2}})
    )
    for i in range(0, len(stream), 5):
        assert tap.feed(stream[i : i + 5]) == stream[i : i + 5]
    assert tap.facts.usage == TokenUsage(input_tokens=9, output_tokens=2)
    assert tap.facts.usage_final and tap.facts.output_chars == 5
    hostile = stream_tap(plan, "application/vnd.amazon.eventstream")
    assert hostile is not None
    hostile.feed(event("metadata", {"usage": {"inputTokens": 1e400}}))
    assert hostile.facts.usage is None and hostile.facts.usage_problem
    assert stream_tap(plan, "application/octet-stream") is None


def test_errors_in_each_shape() -> None:
    gemini = PROVIDERS["gemini"]
    body = gemini.error_body("RESOURCE_EXHAUSTED", "slow down", 429)
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED" and body["error"]["code"] == 429
    assert gemini.error_body("budget_exceeded", "m", 402)["error"]["status"] == "INVALID_ARGUMENT"
    assert shapes.error_kind("gemini", 503) == (
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
    )
    assert shapes.error_kind("gemini", 418)[0] == "INVALID_ARGUMENT"
    assert shapes.error_kind("bedrock", 429)[0] == "ThrottlingException"
    assert PROVIDERS["bedrock"].error_headers("ThrottlingException", 429) == {
        "x-amzn-ErrorType": "ThrottlingException"
    }
    assert shapes.error_kind("azure_openai", 429)[0] == "rate_limit_exceeded"
    assert shapes.rate_limit_headers("openai_compatible", 2, 0)["x-ratelimit-reset-requests"]


def test_faults_that_rewrite_events_skip_binary_streams() -> None:
    def facts(api: str, stream: bool) -> CallFacts:
        return CallFacts(route="r", api=api, agent_id="", agent_version="", model="m", tool="",
                         mcp_method="", stream=stream)  # fmt: skip

    cut = FaultSpec(type="truncated_stream")
    inflate = FaultSpec(type="token_inflation")
    assert applicable(cut, facts("gemini", True)) and not applicable(cut, facts("bedrock", True))
    assert applicable(inflate, facts("bedrock", False))
    assert not applicable(inflate, facts("bedrock", True))
    assert applicable(inflate, facts("gemini", True))
    assert b'"promptTokenCount":20' in shapes.inflate_usage(b'{"promptTokenCount":10}', 2)


def test_route_prices_local_zero_and_overrides() -> None:
    priced = ProxyRoute(
        name="p",
        prefix="/p",
        upstream="http://x",
        api="openai_compatible",
        prices={"big": {"input_per_mtok": 1, "output_per_mtok": 2}},
    )
    star = ProxyRoute(
        name="s",
        prefix="/s",
        upstream="http://x",
        api="openai_compatible",
        prices={"*": {"input_per_mtok": 3, "output_per_mtok": 3}},
    )
    own = ProxyRoute(
        name="o",
        prefix="/o",
        upstream="http://x",
        api="azure_openai",
        prices={"gpt-4o": {"input_per_mtok": 100, "output_per_mtok": 100}},
    )
    pricer = Pricer({}, [LOCAL, priced, star, own])
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    local = plan_call(LOCAL, "POST", "/v1/chat/completions", b'{"model":"llama3"}')
    assert local.pricing == "route:local"
    assert pricer.price(local.pricing, "llama3", usage, 0) == 0.0
    assert pricer.price("route:p", "big", usage, 0) == 3.0
    assert pricer.price("route:p", "other", usage, 0) == 0.0
    assert pricer.price("route:s", "anything", usage, 0) == 6.0
    assert pricer.price("route:o", "gpt-4o", usage, 0) == 200.0
    assert pricer.price("route:o", "gpt-4o-mini", usage, 0) == pytest.approx(0.75)  # azure's
    assert pricer.price("route:gone", "gpt-4o", usage, 0) is None
    azure = plan_call(own, "POST", "/openai/v1/chat/completions", b'{"model":"gpt-4o"}')
    assert azure.pricing == "route:o"
