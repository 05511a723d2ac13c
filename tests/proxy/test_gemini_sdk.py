"""The official google-genai SDK through the proxy: identity, usage (thoughts and cached
tokens), streams, countTokens and embeddings, Google's error shape, and the API key kept
out of every span, log line and capture."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from genai_prices import Usage, calc_price
from google import genai
from google.genai import errors, types

KEY = "AIzaSyPLANTED0123456789abcdefghijklmnop"  # the shape of a real key: 39 characters
MODEL = "gemini-2.5-flash"
ROUTE = {"name": "gemini", "prefix": "/gemini", "api": "gemini"}


def client(base: str, **headers: str) -> genai.Client:
    return genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(base_url=base, headers=headers or None),
    )


def price(input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    usage = Usage(
        input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached or None
    )
    return float(calc_price(usage, MODEL, provider_id="google").total_price)


@pytest.fixture
async def gproxy(make_proxy, provider):
    return await make_proxy(routes=[{**ROUTE, "upstream": provider.url}])


async def test_generate_content_priced_with_thoughts_and_cache(gproxy, provider) -> None:
    provider.thoughts_tokens = 7
    provider.cached_tokens = 3
    sdk = client(gproxy.url + "/gemini", **{"X-Agent-Id": "planner", "X-Agent-Task-Id": "t-9"})
    answer = await sdk.aio.models.generate_content(
        model=MODEL,
        contents="Say hello",
        config=types.GenerateContentConfig(max_output_tokens=64),
    )
    assert answer.text == "Hello word word word word"
    meta = answer.usage_metadata
    assert meta is not None and meta.thoughts_token_count == 7
    received = provider.requests[-1]
    assert received.path.endswith(f"/models/{MODEL}:generateContent")
    assert received.headers["x-goog-api-key"] == KEY  # the agent's key reaches Google
    attrs = gproxy.span_attrs()
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert attrs["gen_ai.operation.name"] == "generate_content"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.id"] == answer.response_id
    assert attrs["agent.id"] == "planner"
    assert attrs["gen_ai.request.max_tokens"] == 64
    prompt = meta.prompt_token_count
    assert attrs["gen_ai.usage.input_tokens"] == prompt
    assert attrs["gen_ai.usage.output_tokens"] == 5 + 7  # candidates and thoughts
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 3
    assert attrs["agent_sre.cost.estimated"] is False
    assert attrs["agent_sre.cost_usd"] == pytest.approx(price(prompt, 12, cached=3))


async def test_stream_is_read_in_flight(gproxy, provider) -> None:
    provider.thoughts_tokens = 2
    sdk = client(gproxy.url + "/gemini")
    pieces = []
    last = None
    async for chunk in await sdk.aio.models.generate_content_stream(model=MODEL, contents="hi"):
        pieces.append(chunk.text)
        last = chunk
    assert "".join(pieces) == "Hello word word word word"
    assert provider.requests[-1].path.endswith(":streamGenerateContent?alt=sse")
    attrs = gproxy.span_attrs()
    assert last is not None and last.usage_metadata is not None
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] == 5 + 2
    assert attrs["gen_ai.usage.input_tokens"] == last.usage_metadata.prompt_token_count
    assert attrs["agent_sre.cost.estimated"] is False
    assert "agent_sre.ttft_seconds" in attrs


async def test_count_tokens_is_free_and_embeddings_are_priced(gproxy, provider) -> None:
    sdk = client(gproxy.url + "/gemini")
    counted = await sdk.aio.models.count_tokens(model=MODEL, contents="hello there")
    assert counted.total_tokens and counted.total_tokens > 0
    attrs = gproxy.span_attrs()
    assert "gen_ai.operation.name" not in attrs and "agent_sre.cost_usd" not in attrs
    embedded = await sdk.aio.models.embed_content(model="gemini-embedding-001", contents="x")
    assert embedded.embeddings
    attrs = gproxy.span_attrs()
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["agent_sre.cost.estimated"] is True  # Google reports no usage for them
    assert attrs["agent_sre.cost_usd"] > 0


async def test_upstream_errors_reach_the_sdk_as_google_errors(gproxy, provider) -> None:
    provider.status = 429
    sdk = client(gproxy.url + "/gemini")
    with pytest.raises(errors.ClientError) as info:
        await sdk.aio.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"


async def test_refusals_are_in_google_shape(make_proxy, provider) -> None:
    proxy = await make_proxy(
        routes=[{**ROUTE, "upstream": provider.url}],
        budgets={"budgets": [{"name": "tiny", "scope": "agent", "limit_usd": 0.000001}]},
    )
    sdk = client(proxy.url + "/gemini", **{"X-Agent-Id": "spender"})
    with pytest.raises(errors.APIError) as info:
        await sdk.aio.models.generate_content(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(max_output_tokens=100_000),
        )
    body = info.value.details
    assert body["error"]["code"] == info.value.code
    assert body["error"]["status"] in ("PERMISSION_DENIED", "RESOURCE_EXHAUSTED")
    assert body["error"]["details"][0]["reason"] == "budget_exceeded"
    assert provider.calls == 0


async def test_key_in_query_header_path_or_body_never_leaves_the_call(
    gproxy, provider, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"contents": [{"parts": [{"text": "hi"}]}], "key": KEY}
    async with aiohttp.ClientSession() as session:
        for path in (
            f"/gemini/v1beta/models/{MODEL}:generateContent?key={KEY}",
            f"/gemini/v1beta/models/{KEY}:generateContent",
            f"/gemini/v1beta/models/{MODEL}:streamGenerateContent?alt=sse&key={KEY}",
        ):
            async with session.post(gproxy.url + path, json=body) as response:
                await response.read()
                assert response.status == 200
    assert f"key={KEY}" in provider.requests[0].path  # forwarded to Google untouched
    secret = KEY.encode()
    assert len(gproxy.spans) == 3
    for request in gproxy.spans:
        assert secret not in request.SerializeToString()
    assert KEY not in caplog.text


async def test_injected_key_replaces_the_agents_everywhere(
    make_proxy, provider, monkeypatch
) -> None:
    monkeypatch.setenv("GEMINI_TEST_KEY", "server-side-key")
    proxy = await make_proxy(
        routes=[{**ROUTE, "upstream": provider.url, "inject_api_key_env": "GEMINI_TEST_KEY"}]
    )
    async with aiohttp.ClientSession() as session:
        url = proxy.url + f"/gemini/v1beta/models/{MODEL}:generateContent?key={KEY}&x=1"
        async with session.post(url, json={"contents": []}, headers={"x-goog-api-key": KEY}) as r:
            assert r.status == 200
    received = provider.requests[-1]
    assert received.headers["x-goog-api-key"] == "server-side-key"
    assert KEY not in received.path and received.path.endswith("?x=1")
