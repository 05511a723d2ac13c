"""A total call deadline per route: an upstream that trickles bytes cannot hold a budget
reservation for ever."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from agent_sre.config import ProxyRoute
from tests.proxy.odd_upstream import odd_routes

BUDGET = {"budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'


def routes(url: str) -> list[dict]:
    return [{**route, "deadline": "1s", "timeout": "30s"} for route in odd_routes(url)]


async def held(proxy) -> float:
    from agent_sre.cost.budgets import CallIdentity

    gate = proxy.server.gate
    charges = gate._guard.charges(CallIdentity(agent_id="a1"), proxy.server.clock.time())
    used = await gate.store.used(charges)
    subjects = (await gate.budgets(proxy.server.clock.time()))[0]["subjects"]
    return used[0] - (subjects[0]["spent_usd"] if subjects else 0.0)


async def test_a_trickling_stream_is_cut_at_the_deadline(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=routes(odd.url))
    odd.events = [EVENT] * 20
    odd.delay = 0.2  # 4 s in all, each chunk well within the 30 s read timeout
    body = {**CHAT, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/odd-openai/v1/chat/completions", json=body, headers={"X-Agent-Id": "a1"}
        ) as r,
    ):
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    for _ in range(50):
        if proxy.spans:
            break
        await asyncio.sleep(0.05)
    assert proxy.span_attrs()["error.type"] == "upstream_stream_error"
    assert await held(proxy) == pytest.approx(0.0)


async def test_a_slow_answer_is_504_at_the_deadline(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=routes(odd.url))
    odd.delay = 3.0
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/odd-openai/v1/chat/completions", json=CHAT, headers={"X-Agent-Id": "a1"}
        ) as r,
    ):
        assert r.status == 504
        assert (await r.json())["error"]["type"] == "upstream_timeout"
    assert await held(proxy) == pytest.approx(0.0)


def test_deadline_defaults_to_an_hour_and_must_be_positive() -> None:
    route = ProxyRoute(name="r", prefix="/r", upstream="http://127.0.0.1:1", api="openai")
    assert route.deadline == 3600.0
    with pytest.raises(ValueError, match="deadline"):
        ProxyRoute(name="r", prefix="/r", upstream="http://x", api="openai", deadline=0)
