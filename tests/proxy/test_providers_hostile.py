"""Hostile upstreams of the new providers: Gemini and Bedrock usage that cannot be booked
(huge, negative, NaN-making, not whole), broken and cut server-sent events and event-stream
frames. Never a crash; the client gets the upstream's bytes as they came; the budget is
charged exactly: the usage when it can be trusted, the reservation when it cannot, an
estimate from what passed when none came."""

from __future__ import annotations

import json

import aiohttp
import pytest

from agent_sre.gateway.eventstream import encode_message
from agent_sre.gateway.providers import plan_call

BUDGET = {"budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]}
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
BEDROCK_PATH = "/model/amazon.nova-lite-v1:0/converse"
GEMINI_BODY = {
    "contents": [{"parts": [{"text": "hi"}]}],
    "generationConfig": {"maxOutputTokens": 50},
}
BEDROCK_BODY = {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "inferenceConfig": {"maxTokens": 50}}  # fmt: skip
HUGE = "1" + "0" * 400
BAD_GEMINI = [
    f'{{"promptTokenCount": {HUGE}, "candidatesTokenCount": 1}}',
    '{"promptTokenCount": 1e400, "candidatesTokenCount": 1}',
    '{"promptTokenCount": -3, "candidatesTokenCount": 1}',
    '{"promptTokenCount": 3, "candidatesTokenCount": 2.5}',
    '{"promptTokenCount": 3, "thoughtsTokenCount": 99999999999}',
    '{"promptTokenCount": 3, "cachedContentTokenCount": "all"}',
]
BAD_BEDROCK = [
    f'{{"inputTokens": {HUGE}, "outputTokens": 1}}',
    '{"inputTokens": -1, "outputTokens": 1}',
    '{"inputTokens": 1, "outputTokens": 1, "cacheReadInputTokens": 1e300}',
]


def routes(url: str) -> list[dict[str, str]]:
    return [
        {"name": "g", "prefix": "/g", "upstream": url, "api": "gemini"},
        {"name": "b", "prefix": "/b", "upstream": url, "api": "bedrock",
         "aws_signing": "client"},
    ]  # fmt: skip


async def post(url: str, body: dict) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"X-Agent-Id": "a1"}) as r,
    ):
        return r.status, await r.read()


async def spent(proxy) -> float:
    budgets = await proxy.server.gate.budgets(proxy.server.clock.time())
    json.dumps(budgets, allow_nan=False)
    subjects = budgets[0]["subjects"]
    return subjects[0]["spent_usd"] if subjects else 0.0


def worst(proxy, route_name: str, path: str, body: dict) -> float:
    route = next(r for r in proxy.server.config.proxy.routes if r.name == route_name)
    plan = plan_call(route, "POST", path.partition("?")[0], json.dumps(body).encode())
    return proxy.server.gate.worst_case_usd(plan, proxy.server.clock.time())


def gemini_chunk(usage: str, last: bool = True) -> bytes:
    finish = ',"finishReason":"STOP"' if last else ""
    return (
        '{"candidates":[{"content":{"parts":[{"text":"hello"}]}' + finish + "}],"
        f'"usageMetadata":{usage},"modelVersion":"gemini-2.5-flash"}}'
    ).encode()


def aws_event(name: str, payload: bytes) -> bytes:
    return encode_message({":event-type": name, ":message-type": "event"}, payload)


@pytest.mark.parametrize("usage", BAD_GEMINI)
async def test_gemini_usage_that_cannot_be_booked(make_proxy, odd, usage) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=routes(odd.url))
    odd.body = gemini_chunk(usage)
    status, body = await post(proxy.url + "/g" + GEMINI_PATH, GEMINI_BODY)
    assert (status, body) == (200, odd.body)
    reserved = worst(proxy, "g", GEMINI_PATH, GEMINI_BODY)
    assert await spent(proxy) == pytest.approx(reserved)
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.usage.invalid"]
    assert attrs["agent_sre.cost_usd"] == pytest.approx(reserved)

    odd.events = [b"data: " + gemini_chunk(usage) + b"\r\n\r\n"]  # the same, streamed
    status, body = await post(proxy.url + "/g" + GEMINI_STREAM, GEMINI_BODY)
    assert (status, body) == (200, odd.events[0])
    assert await spent(proxy) == pytest.approx(2 * reserved)


@pytest.mark.parametrize("usage", BAD_BEDROCK)
async def test_bedrock_usage_that_cannot_be_booked(make_proxy, odd, usage) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=routes(odd.url))
    odd.body = b'{"output":{"message":{"content":[{"text":"hi"}]}},"usage":' + usage.encode() + b"}"
    status, body = await post(proxy.url + "/b" + BEDROCK_PATH, BEDROCK_BODY)
    assert (status, body) == (200, odd.body)
    reserved = worst(proxy, "b", BEDROCK_PATH, BEDROCK_BODY)
    assert await spent(proxy) == pytest.approx(reserved)
    odd.stream_type = "application/vnd.amazon.eventstream"
    frames = aws_event("metadata", b'{"usage":' + usage.encode() + b"}")
    odd.events = [frames[:7], frames[7:]]
    status, body = await post(proxy.url + "/b" + BEDROCK_PATH + "-stream", BEDROCK_BODY)
    assert (status, body) == (200, frames)
    assert proxy.span_attrs()["agent_sre.usage.invalid"]
    assert await spent(proxy) == pytest.approx(2 * reserved)


async def test_broken_and_cut_event_streams_pass_untouched_and_are_estimated(
    make_proxy, odd
) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=routes(odd.url))
    odd.stream_type = "application/vnd.amazon.eventstream"
    delta = aws_event("contentBlockDelta", b'{"delta":{"text":"' + b"w" * 400 + b'"}}')
    usage = aws_event("metadata", b'{"usage":{"inputTokens":3,"outputTokens":4}}')
    corrupt = bytearray(delta)
    corrupt[20] ^= 0xFF  # the payload changed under its CRC
    cases = [
        [delta, bytes(corrupt), usage],  # a bad frame: nothing after it is read
        [delta, usage[:10]],  # cut mid-frame
        [b"\x00\x00\x00\x10" + b"\xff" * 40, usage],  # a prelude that lies
        [delta + b"\x00\x00\x00\x00\x00"],  # bytes after the last frame
    ]
    total = 0.0
    for events in cases:
        odd.events = events
        path = proxy.url + "/b" + BEDROCK_PATH + "-stream"
        status, body = await post(path, BEDROCK_BODY)
        assert (status, body) == (200, b"".join(events))  # what came, as it came
        attrs = proxy.span_attrs()
        assert attrs["agent_sre.cost.estimated"] is True, events
        # estimated from the text read before the framing broke (none behind a lying prelude)
        read_text = events[0] is delta or events[0].startswith(delta)
        assert (attrs["gen_ai.usage.output_tokens"] >= 100) is read_text
        total += attrs["agent_sre.cost_usd"]
    assert await spent(proxy) == pytest.approx(total)

    odd.stream_type = "text/event-stream"  # Gemini: broken JSON, odd lines, a cut event
    odd.events = [
        b"data: {not json\r\n\r\n",
        b": a comment\r\n\r\nevent: x\r\ndata: [1,2]\r\n\r\n",
        b"data: " + gemini_chunk('{"promptTokenCount":5,"candidatesTokenCount":2}', last=False),
    ]
    status, body = await post(proxy.url + "/g" + GEMINI_STREAM, GEMINI_BODY)
    assert (status, body) == (200, b"".join(odd.events))
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost.estimated"] is True  # no finishReason: never final
    assert attrs["gen_ai.usage.input_tokens"] == 5
