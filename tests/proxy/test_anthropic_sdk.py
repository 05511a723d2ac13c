"""The official anthropic SDK through the proxy."""

from __future__ import annotations

import time

import aiohttp
import anthropic
import pytest
from genai_prices import Usage, calc_price

SECRET = "sk-ant-test-0123456789"
MODEL = "claude-3-5-haiku-latest"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(base: str, **headers: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=base, api_key=SECRET, default_headers=headers, max_retries=2
    )


def price(input_tokens: int, output_tokens: int) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, MODEL, provider_id="anthropic").total_price)


async def test_message_identical_to_direct(proxy, provider) -> None:
    direct = client(provider.url)
    proxied = client(
        proxy.url + "/anthropic", **{"X-Agent-Id": "planner", "X-Agent-Task-Id": "t-1"}
    )
    a = await direct.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES
    )
    b = await proxied.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES
    )
    assert b.http_response.content == a.http_response.content
    message = await b.parse()
    assert message.content[0].text == "Hello word word word word"
    direct_headers, proxied_headers = provider.requests[-2].headers, provider.requests[-1].headers
    for name in ("authorization", "x-api-key", "anthropic-version"):
        assert proxied_headers.get(name) == direct_headers.get(name)
    credentials = f"{proxied_headers.get('x-api-key')} {proxied_headers.get('authorization')}"
    assert SECRET in credentials
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["agent.id"] == "planner"
    assert attrs["agent.task.id"] == "t-1"
    assert attrs["gen_ai.usage.input_tokens"] == message.usage.input_tokens
    assert attrs["agent_sre.cost_usd"] == pytest.approx(
        price(message.usage.input_tokens, message.usage.output_tokens)
    )
    assert attrs["gen_ai.request.max_tokens"] == 64


async def test_stream_identical_and_chunk_by_chunk(proxy, provider) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(provider.url + "/v1/messages", json=body) as r:
            direct = await r.read()
        async with session.post(proxy.url + "/anthropic/v1/messages", json=body) as r:
            proxied = await r.read()
    assert proxied == direct
    assert provider.requests[-1].body == provider.requests[-2].body  # nothing added

    provider.chunk_delay = 0.08
    sdk = client(proxy.url + "/anthropic")
    started = time.perf_counter()
    arrivals = []
    async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                arrivals.append(time.perf_counter() - started)
        final = await stream.get_final_message()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) > 0.04, gaps
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.usage.output_tokens"] == final.usage.output_tokens == 5
    assert attrs["gen_ai.usage.input_tokens"] == final.usage.input_tokens
    assert attrs["agent_sre.cost.estimated"] is False
    assert attrs["agent_sre.cost_usd"] == pytest.approx(price(final.usage.input_tokens, 5))
    assert attrs["agent_sre.ttft_seconds"] < arrivals[-1]


async def test_upstream_error_in_anthropic_shape(proxy, provider) -> None:
    provider.status = 404
    sdk = client(proxy.url + "/anthropic")
    with pytest.raises(anthropic.NotFoundError) as info:
        await sdk.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "not_found_error"


async def test_stream_without_usage_is_estimated(proxy, provider) -> None:
    provider.omit_usage = True
    sdk = client(proxy.url + "/anthropic")
    stream = await sdk.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    [event async for event in stream]
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost.estimated"] is True
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["agent_sre.cost_usd"] > 0
