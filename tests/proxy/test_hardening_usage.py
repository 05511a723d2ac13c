"""Bug 4: the ledger never trusts the upstream's usage numbers. Unusable usage (huge,
negative, not whole, NaN-making) settles the call at its reservation, marked on its span;
no reservation leaks; /v1/budgets stays JSON; ``n`` choices are reserved."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest

from agent_sre.gateway.providers import plan_call
from tests.proxy.odd_upstream import odd_routes

BUDGET = {"budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
CLAUDE = {"model": "claude-3-5-haiku-20241022", "max_tokens": 50, "messages": CHAT["messages"]}

HUGE = "1" + "0" * 400
BAD_OPENAI_USAGE = [
    '{"prompt_tokens": 1e308, "completion_tokens": 1e308}',
    '{"prompt_tokens": -1e308, "completion_tokens": 5}',
    f'{{"prompt_tokens": {HUGE}, "completion_tokens": 5}}',
    '{"prompt_tokens": -5, "completion_tokens": -7}',
    '{"prompt_tokens": 3, "completion_tokens": 2.5}',
    '{"prompt_tokens": "12", "completion_tokens": 2}',
    '{"prompt_tokens": true, "completion_tokens": 2}',
    '{"prompt_tokens": 3, "completion_tokens": 99999999999}',
    '{"prompt_tokens": 3, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": -1}}',
    '{"input_tokens": 1e400, "output_tokens": 2}',
]


def chat_body(usage: str) -> bytes:
    return (
        '{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
        '"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
        f'"usage":{usage}}}'
    ).encode()


async def post(url: str, body: dict, agent: str = "a1") -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"X-Agent-Id": agent}) as r,
    ):
        return r.status, await r.read()


async def spent(proxy) -> list[dict]:
    budgets = await proxy.server.gate.budgets(proxy.server.clock.time())
    json.dumps(budgets, allow_nan=False)  # valid JSON: no NaN, no Infinity
    return budgets[0]["subjects"]


def reservation(proxy, body: dict, api: str = "odd-openai", path: str = "/v1/chat/completions"):
    route = next(r for r in proxy.server.config.proxy.routes if r.name == api)
    plan = plan_call(route, "POST", path, json.dumps(body).encode())
    return plan, proxy.server.gate.worst_case_usd(plan, proxy.server.clock.time())


@pytest.mark.parametrize("usage", BAD_OPENAI_USAGE)
async def test_unusable_usage_settles_at_the_reservation(make_proxy, odd, usage) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    odd.body = chat_body(usage)
    status, body = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    assert body == odd.body  # the client gets the upstream's bytes
    _, worst = reservation(proxy, CHAT)
    subjects = await spent(proxy)
    assert subjects[0]["spent_usd"] == pytest.approx(worst)
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.usage.invalid"]
    assert attrs["agent_sre.cost_usd"] == pytest.approx(worst)
    assert "gen_ai.usage.input_tokens" not in attrs
    assert proxy.metric("agent_sre_llm_invalid_usage_requests_total", {"route": "odd-openai"}) == 1


def _who():
    from agent_sre.cost.budgets import CallIdentity

    return CallIdentity(agent_id="a1")


async def test_no_reservation_leaks_after_unusable_usage(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    gate = proxy.server.gate
    now = proxy.server.clock.time()
    charges = gate._guard.charges(_who(), now)
    for usage in BAD_OPENAI_USAGE:
        odd.body = chat_body(usage)
        status, _ = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
        assert status == 200
    used = await gate.store.used(charges)
    subjects = await spent(proxy)
    assert used[0] == pytest.approx(subjects[0]["spent_usd"])  # spent, nothing still reserved
    assert len(proxy.spans) == len(BAD_OPENAI_USAGE)  # every call kept its span


@pytest.mark.parametrize(
    "usage",
    [
        '{"input_tokens": -5, "output_tokens": 3}',
        '{"input_tokens": 1e308, "output_tokens": 3}',
        f'{{"input_tokens": 3, "output_tokens": {HUGE}}}',
        '{"input_tokens": 3, "output_tokens": 3, "cache_read_input_tokens": -100}',
    ],
)
async def test_anthropic_unusable_usage(make_proxy, odd, usage) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    odd.body = (
        '{"id":"m","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022",'
        f'"content":[{{"type":"text","text":"hi"}}],"usage":{usage}}}'
    ).encode()
    status, body = await post(proxy.url + "/odd-anthropic/v1/messages", CLAUDE)
    assert status == 200
    assert body == odd.body
    _, worst = reservation(proxy, CLAUDE, "odd-anthropic", "/v1/messages")
    assert (await spent(proxy))[0]["spent_usd"] == pytest.approx(worst)
    assert proxy.span_attrs()["agent_sre.usage.invalid"]


async def test_unusable_usage_in_a_stream(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    chunk = '{"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":%s%s}'
    odd.events = [
        b"data: " + (chunk % ('[{"index":0,"delta":{"content":"hi"}}]', "")).encode() + b"\n\n",
        b"data: "
        + (chunk % ("[]", ',"usage":{"prompt_tokens":-3,"completion_tokens":1e308}')).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    status, raw = await post(proxy.url + "/odd-openai/v1/chat/completions", body)
    assert status == 200
    assert raw == b"".join(odd.events)
    _, worst = reservation(proxy, body)
    assert (await spent(proxy))[0]["spent_usd"] == pytest.approx(worst)
    assert proxy.span_attrs()["agent_sre.usage.invalid"]


async def test_good_usage_is_still_booked(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    odd.body = chat_body('{"prompt_tokens": 12, "completion_tokens": 3.0}')  # whole float: fine
    status, _ = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    attrs = proxy.span_attrs()
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert "agent_sre.usage.invalid" not in attrs
    _, worst = reservation(proxy, CHAT)
    assert 0 < (await spent(proxy))[0]["spent_usd"] < worst


async def test_reservation_counts_every_choice(proxy) -> None:
    _, one = reservation(proxy, CHAT, "openai")
    plan, four = reservation(proxy, {**CHAT, "n": 4}, "openai")
    assert plan.choices == 4
    assert plan.worst_case_tokens == plan.input_tokens_estimate + 4 * 50
    assert four > one * 3
    plan, _ = reservation(proxy, {**CHAT, "n": 10**400, "max_tokens": 10**400}, "openai")
    assert plan.choices == 128
    assert math.isfinite(proxy.server.gate.worst_case_usd(plan, 0.0))


async def test_budgets_stay_json_when_the_ledger_holds_infinity(make_proxy) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    gate = proxy.server.gate
    charges = gate._guard.charges(_who(), proxy.server.clock.time())
    held = await gate.store.reserve(charges, 0.0)
    await gate.store.settle(held, float("inf"))  # what an older daemon could have written
    subjects = await spent(proxy)
    assert subjects[0]["spent_usd"] is None


async def test_a_nan_cost_is_never_booked(make_proxy) -> None:
    from agent_sre_daemon.proxy.gate import Ticket

    proxy = await make_proxy(budgets=BUDGET)
    gate = proxy.server.gate
    now = proxy.server.clock.time()
    charges = gate._guard.charges(_who(), now)
    held = await gate.store.reserve(charges, 0.25)
    await gate.settle(Ticket(_who(), held), float("nan"), now)
    assert (await spent(proxy))[0]["spent_usd"] == pytest.approx(0.25)
