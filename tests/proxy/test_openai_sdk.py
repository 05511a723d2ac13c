"""The official openai SDK through the proxy behaves exactly as against the provider."""

from __future__ import annotations

import time

import aiohttp
import openai
import pytest
from genai_prices import Usage, calc_price

SECRET = "sk-test-openai-0123456789"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(base: str, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key=SECRET, default_headers=headers, max_retries=2)


def price(model: str, input_tokens: int, output_tokens: int, provider: str = "openai") -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, model, provider_id=provider).total_price)


async def test_chat_completion_identical_to_direct(proxy, provider) -> None:
    direct = client(provider.url + "/v1")
    proxied = client(proxy.url + "/openai/v1", **{"X-Agent-Id": "writer"})
    a = await direct.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    b = await proxied.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert b.http_response.content == a.http_response.content
    assert b.parse().model_dump() == a.parse().model_dump()
    assert provider.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"
    attrs = proxy.span_attrs()
    completion = a.parse()
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["agent.span.kind"] == "LLM_INFERENCE"
    assert attrs["agent.id"] == "writer"
    assert attrs["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    expected = price(
        "gpt-4o-mini", completion.usage.prompt_tokens, completion.usage.completion_tokens
    )
    assert attrs["agent_sre.cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert attrs["agent_sre.cost.estimated"] is False
    assert proxy.metric(
        "agent_sre_llm_cost_usd_total", {"agent": "writer", "model": "gpt-4o-mini"}
    ) == pytest.approx(expected)
    assert proxy.metric("agent_sre_proxy_requests_total", {"route": "openai", "status": "200"}) == 1


async def test_completions_embeddings_and_responses(proxy, provider) -> None:
    sdk = client(proxy.url + "/openai/v1")
    completion = await sdk.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Hi", max_tokens=3
    )
    assert completion.choices[0].text == "Hello word word"
    assert proxy.span_attrs()["gen_ai.operation.name"] == "text_completion"
    assert proxy.span_attrs()["gen_ai.usage.output_tokens"] == 3

    embedding = await sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(embedding.data) == 2
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["agent_sre.cost_usd"] == pytest.approx(
        price("text-embedding-3-small", embedding.usage.prompt_tokens, 0)
    )

    response = await sdk.responses.create(model="gpt-4o-mini", input="Hi")
    assert response.output_text == "Hello word word word word"
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    assert attrs["agent_sre.cost_usd"] == pytest.approx(
        price("gpt-4o-mini", response.usage.input_tokens, response.usage.output_tokens)
    )


async def test_stream_without_include_usage_is_exactly_what_the_client_asked(
    proxy, provider
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(provider.url + "/v1/chat/completions", json=body) as r:
            direct = await r.read()
        async with session.post(proxy.url + "/openai/v1/chat/completions", json=body) as r:
            proxied = await r.read()
            assert r.headers["Content-Type"].startswith("text/event-stream")
    assert proxied == direct
    assert b'"usage"' not in proxied
    assert provider.requests[-1].json()["stream_options"] == {"include_usage": True}
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["agent_sre.cost.estimated"] is False
    assert attrs["agent_sre.cost_usd"] > 0


async def test_stream_with_include_usage_passes_untouched(proxy, provider) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(provider.url + "/v1/chat/completions", json=body) as r:
            direct = await r.read()
        async with session.post(proxy.url + "/openai/v1/chat/completions", json=body) as r:
            proxied = await r.read()
    assert proxied == direct
    assert b'"choices":[],"usage":{' in proxied
    assert provider.requests[-1].body == provider.requests[-2].body


async def test_sdk_stream_arrives_chunk_by_chunk(proxy, provider) -> None:
    provider.chunk_delay = 0.1
    sdk = client(proxy.url + "/openai/v1")
    started = time.perf_counter()
    stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    arrivals, text = [], ""
    async for chunk in stream:
        arrivals.append(time.perf_counter() - started)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text == "Hello word word word word"
    assert len(arrivals) == 7  # role chunk, 5 words, finish chunk; no usage chunk
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) > 0.05, gaps  # each chunk forwarded as it came, not buffered
    attrs = proxy.span_attrs()
    assert 0 < attrs["agent_sre.ttft_seconds"] < arrivals[-1] - 0.3


async def test_sdk_stream_with_usage(proxy, provider) -> None:
    sdk = client(proxy.url + "/openai/v1")
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.usage.input_tokens"] == chunks[-1].usage.prompt_tokens
    assert attrs["agent_sre.cost_usd"] == pytest.approx(
        price("gpt-4o-mini", chunks[-1].usage.prompt_tokens, 5)
    )


async def test_responses_stream(proxy, provider) -> None:
    sdk = client(proxy.url + "/openai/v1")
    stream = await sdk.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["agent_sre.cost.estimated"] is False


async def test_upstream_error_reaches_client_as_sent(proxy, provider) -> None:
    provider.status = 400
    sdk = client(proxy.url + "/openai/v1")
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.body["type"] == "invalid_request_error"
    assert provider.calls == 1
    span = proxy.span()
    assert span.status.code == 2
    assert proxy.span_attrs()["error.type"] == "400"


async def test_upstream_5xx_is_retried_by_the_sdk_like_a_direct_call(proxy, provider) -> None:
    provider.status = 503
    sdk = openai.AsyncOpenAI(base_url=proxy.url + "/openai/v1", api_key=SECRET, max_retries=1)
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert provider.calls == 2


async def test_response_without_usage_is_estimated_never_zero(proxy, provider) -> None:
    provider.omit_usage = True
    sdk = client(proxy.url + "/openai/v1")
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["agent_sre.cost_usd"] > 0
    assert proxy.metric("agent_sre_llm_estimated_usage_requests_total", {"route": "openai"}) == 1


async def test_stream_without_usage_is_estimated(proxy, provider) -> None:
    provider.omit_usage = True
    sdk = client(proxy.url + "/openai/v1")
    stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    [chunk async for chunk in stream]
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost.estimated"] is True
    assert attrs["gen_ai.usage.output_tokens"] == 7  # 25 characters / 4, rounded up
    assert attrs["agent_sre.cost_usd"] > 0
