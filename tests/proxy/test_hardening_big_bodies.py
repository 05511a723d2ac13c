"""A large request body is parsed on a worker thread: the proxy keeps answering other calls
meanwhile, and the call is planned exactly as an inline parse would plan it."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import aiohttp

from agent_sre.gateway.providers import plan_call
from agent_sre_daemon.proxy import server as proxy_server

BUDGET = {"budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]}
HEADERS = {"Content-Type": "application/json", "X-Agent-Id": "a1"}


def big_chat(**extra: Any) -> bytes:
    """A chat request just over the inline-parse threshold: many messages, as agents send."""
    filler = "lorem ipsum " * 80
    count = proxy_server.PARSE_OFF_LOOP_BYTES // len(filler) + 1
    messages = [{"role": "user", "content": filler} for _ in range(count)]
    body = json.dumps({"model": "gpt-4o-mini", "messages": messages, **extra}).encode()
    assert len(body) > proxy_server.PARSE_OFF_LOOP_BYTES
    return body


SMALL = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


async def post(url: str, body: bytes | str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/openai/v1/chat/completions", data=body, headers=HEADERS) as r,
    ):
        return r.status, await r.json()


async def test_a_small_call_is_answered_while_a_big_body_is_parsed(
    monkeypatch, make_proxy, provider
) -> None:
    # The big call's parse is held open (on whatever thread runs it) until the small call
    # has been answered; a parse on the event loop would hold the small call behind it.
    parsing, release = threading.Event(), threading.Event()
    parsed_on: list[str] = []

    def held_plan(route: Any, method: str, path: str, body: bytes) -> Any:
        if len(body) > proxy_server.PARSE_OFF_LOOP_BYTES:
            parsed_on.append(threading.current_thread().name)
            parsing.set()
            release.wait(30)
        return plan_call(route, method, path, body)

    monkeypatch.setattr(proxy_server, "plan_call", held_plan)
    proxy = await make_proxy()
    order: list[str] = []

    async def call(name: str, body: bytes | str) -> int:
        status, _ = await post(proxy.url, body)
        order.append(name)
        return status

    big = asyncio.create_task(call("big", big_chat()))
    assert await asyncio.to_thread(parsing.wait, 30)
    try:
        assert await call("small", SMALL) == 200
    finally:
        release.set()
    assert await big == 200
    assert order == ["small", "big"]
    assert parsed_on and parsed_on[0] != threading.main_thread().name
    assert len(provider.requests) == 2


async def test_a_big_body_is_planned_as_an_inline_parse_plans_it(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    body = big_chat(stream=True, max_tokens=7)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/openai/v1/chat/completions", data=body, headers=HEADERS
        ) as response,
    ):
        assert response.status == 200
        events = await response.read()
    assert b"[DONE]" in events
    # the plan read model, stream and cap, and asked the upstream for usage (body rewritten)
    sent = provider.requests[-1].json()
    assert sent["stream_options"] == {"include_usage": True}
    assert len(sent["messages"]) == len(json.loads(body)["messages"])
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.max_tokens"] == 7
    assert attrs["agent_sre.cost_usd"] > 0


async def test_an_unreadable_big_body_is_unpriced_and_refused_under_a_budget(
    make_proxy, provider
) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    broken = big_chat()[:-2]  # cut short: not JSON
    status, answer = await post(proxy.url, broken)
    assert status == 403
    assert answer["error"]["type"] == "model_unpriced"
    assert provider.calls == 0
    assert proxy.server._bodies.held == 0


async def test_a_big_body_naming_the_model_twice_is_refused(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    body = big_chat()
    twice = body[:-1] + b', "model": "gpt-4o"}'
    status, answer = await post(proxy.url, twice)
    assert status == 403
    assert answer["error"]["type"] == "model_unpriced"
    assert provider.calls == 0
