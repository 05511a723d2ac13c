"""Bug 7: odd but parseable responses never give the client a 500 or a cut stream: the
client gets the upstream's bytes; our reading failing only means unknown usage."""

from __future__ import annotations

import aiohttp
import pytest

from tests.proxy.odd_upstream import odd_routes

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
CLAUDE = {"model": "claude-3-5-haiku-20241022", "max_tokens": 50, "messages": CHAT["messages"]}
DEEP = b"[" * 100_000 + b"]" * 100_000

ODD_JSON = [
    b'{"model":"gpt-4o-mini","choices":[{"message":"just a string"}]}',
    b'{"model":"gpt-4o-mini","choices":[{"message":{"tool_calls":' + DEEP + b"}}]}",
    b'{"model":"gpt-4o-mini","choices":7,"usage":{"prompt_tokens":1,"completion_tokens":1}}',
    b'{"model":{"a":1},"choices":[null, 1, "x"],"output":"text","usage":[]}',
    b'{"usage":{"prompt_tokens_details":"x","prompt_tokens":1,"completion_tokens":1}}',
    b'{"usage":' * 40_000 + b"1" + b"}" * 40_000,
    DEEP,
    b'"a string"',
    b"null",
]


async def post(url: str, body: dict) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"X-Agent-Id": "a1"}) as r,
    ):
        return r.status, await r.read()


@pytest.mark.parametrize("body", ODD_JSON, ids=range(len(ODD_JSON)))
@pytest.mark.parametrize("api", ["odd-openai", "odd-anthropic"])
async def test_odd_json_reaches_the_client_untouched(make_proxy, odd, body, api) -> None:
    proxy = await make_proxy(routes=odd_routes(odd.url))
    odd.body = body
    path = "/v1/chat/completions" if api == "odd-openai" else "/v1/messages"
    status, got = await post(proxy.url + f"/{api}{path}", CHAT if api == "odd-openai" else CLAUDE)
    assert status == 200
    assert got == body
    assert proxy.span_attrs()["agent.span.kind"] == "LLM_INFERENCE"


ODD_EVENTS = [
    b'data: {"choices":[{"delta":"a string"}]}\n\n',
    b'data: {"choices":[{"delta":{"content":5}}]}\n\n',
    b'data: {"choices":"x","usage":"y"}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":"str"}\n\n',
    b'event: message_start\ndata: {"type":"message_start","message":"str"}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":"9"}}\n\n',
    b"data: " + DEEP + b"\n\n",
    b'data: {"choices":[{"delta":{"tool_calls":' + DEEP + b"}}]}\n\n",
    b"data: [DONE]\n\n",
]


@pytest.mark.parametrize("api", ["odd-openai", "odd-anthropic"])
@pytest.mark.parametrize("ask_usage", [True, False])
async def test_odd_events_never_cut_the_stream(make_proxy, odd, api, ask_usage) -> None:
    proxy = await make_proxy(routes=odd_routes(odd.url))
    odd.events = ODD_EVENTS
    body = {**(CHAT if api == "odd-openai" else CLAUDE), "stream": True}
    if ask_usage and api == "odd-openai":
        body["stream_options"] = {"include_usage": True}
    path = "/v1/chat/completions" if api == "odd-openai" else "/v1/messages"
    status, got = await post(proxy.url + f"/{api}{path}", body)
    assert status == 200
    assert got == b"".join(ODD_EVENTS)
    attrs = proxy.span_attrs()
    assert "error.type" not in attrs
