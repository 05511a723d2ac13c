"""Budgets enforced inline: refusals without retries or upstream calls, no overspend."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest
from aiohttp import web

from agent_sre.gateway.providers import plan_call

MESSAGES = [{"role": "user", "content": "Say hello"}]
BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 100}


def sdk(proxy, agent: str = "a1", retries: int = 2, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key="sk-budget",
        max_retries=retries,
        default_headers={"X-Agent-Id": agent, **headers},
    )


def worst_case(proxy, body: dict = BODY) -> float:
    route = proxy.server.config.proxy.routes[0]
    plan = plan_call(
        route, "POST", "/v1/chat/completions", json.dumps(body, separators=(",", ":")).encode()
    )
    return proxy.server.gate.worst_case_usd(plan, 0.0)


async def admin(proxy) -> str:
    app = web.Application()
    app.add_routes(proxy.server.admin_routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy.extra["admin_runner"] = runner
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}"


async def test_refusal_raises_sdk_error_without_retry_or_upstream_call(
    make_proxy, provider
) -> None:
    proxy = await make_proxy(
        budgets={
            "budgets": [{"name": "tiny", "scope": "agent", "limit_usd": 0.000001, "window": "day"}]
        }
    )
    with pytest.raises(openai.PermissionDeniedError) as info:
        await sdk(proxy).chat.completions.create(**BODY)
    assert info.value.status_code == 403
    assert info.value.body["type"] == "budget_exceeded"
    assert "tiny" in info.value.body["message"]
    assert provider.calls == 0
    assert (
        proxy.metric("agent_sre_proxy_requests_total", {"route": "openai", "status": "403"}) == 1
    )  # no SDK retry
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "tiny"}) == 1
    attrs = proxy.span_attrs()
    assert attrs["error.type"] == "budget_exceeded"
    assert attrs["agent.span.kind"] == "LLM_INFERENCE"


async def test_anthropic_refusal_in_anthropic_shape(make_proxy, provider) -> None:
    import anthropic

    proxy = await make_proxy(
        budgets={"budgets": [{"name": "tiny", "scope": "global", "limit_usd": 0.000001}]}
    )
    client = anthropic.AsyncAnthropic(base_url=proxy.url + "/anthropic", api_key="k")
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        await client.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=100, messages=MESSAGES
        )
    assert info.value.body == {
        "type": "error",
        "error": {"type": "budget_exceeded", "message": info.value.body["error"]["message"]},
    }
    assert provider.calls == 0


async def test_fifty_parallel_calls_cannot_overspend(make_proxy, provider) -> None:
    provider.latency = 0.2  # every call is in flight while the others arrive
    probe = await make_proxy()
    limit = worst_case(probe) * 10.5
    proxy = await make_proxy(
        budgets={
            "budgets": [{"name": "ten", "scope": "agent", "limit_usd": limit, "window": "day"}]
        }
    )
    client = sdk(proxy, retries=0)

    async def one() -> bool:
        try:
            await client.chat.completions.create(**BODY)
        except openai.PermissionDeniedError:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(results) == 10
    assert provider.calls == 10
    counters = await proxy.server.store.counters()
    assert [(c.budget, c.subject) for c in counters] == [("ten", "a1")]
    spent = counters[0].spent_usd
    assert spent == pytest.approx(
        sum(
            attrs["agent_sre.cost_usd"]
            for attrs in (proxy.span_attrs(i) for i in range(len(proxy.spans)))
            if "agent_sre.cost_usd" in attrs
        )
    )
    assert 0 < spent <= limit
    assert proxy.metric("agent_sre_budget_spent_usd", {"budget": "ten"}) == pytest.approx(spent)
    assert proxy.metric("agent_sre_budget_limit_usd", {"budget": "ten"}) == limit


async def test_budgets_are_per_subject(make_proxy, provider) -> None:
    limit = worst_case(await make_proxy()) * 1.5
    proxy = await make_proxy(
        budgets={"budgets": [{"name": "per-agent", "scope": "agent", "limit_usd": limit}]}
    )
    await sdk(proxy, "a").chat.completions.create(**BODY)
    await sdk(proxy, "b").chat.completions.create(**BODY)
    assert provider.calls == 2


async def test_task_budget_uses_task_header_and_baggage(make_proxy, provider) -> None:
    limit = worst_case(await make_proxy()) * 1.05  # one call's worst case, not two
    proxy = await make_proxy(
        budgets={
            "budgets": [{"name": "task", "scope": "task", "limit_usd": limit, "window": "per_task"}]
        }
    )
    await sdk(proxy, "a", **{"X-Agent-Task-Id": "t1"}).chat.completions.create(**BODY)
    # the same task arriving through W3C baggage only
    other = openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key="k",
        max_retries=0,
        default_headers={"baggage": "agent.id=a,agent.task.id=t1"},
    )
    with pytest.raises(openai.PermissionDeniedError):
        await other.chat.completions.create(**BODY)
    assert proxy.span_attrs()["agent.task.id"] == "t1"
    # another task has its own counter; a call without a task has no task budget
    await sdk(proxy, "a", **{"X-Agent-Task-Id": "t2"}).chat.completions.create(**BODY)
    await sdk(proxy, "a").chat.completions.create(**BODY)
    assert provider.calls == 3


async def test_throttle_action_answers_429_with_retry_after(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={
            "budgets": [
                {
                    "name": "hourly",
                    "scope": "agent",
                    "limit_usd": 0.000001,
                    "window": "1h",
                    "action": "throttle",
                }
            ]
        }
    )
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    assert info.value.body["type"] == "agent_throttled"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert provider.calls == 0


async def test_alert_action_never_refuses_but_signals(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={
            "budgets": [
                {"name": "watch", "scope": "node", "limit_usd": 0.000001, "action": "alert"}
            ]
        }
    )
    await sdk(proxy).chat.completions.create(**BODY)
    await sdk(proxy).chat.completions.create(**BODY)
    assert provider.calls == 2
    kinds = proxy.signal_types()
    assert kinds.count("budget_exhausted") == 1
    assert proxy.metric("agent_sre_cost_signals_total", {"kind": "budget_exhausted"}) == 1


async def test_soft_threshold_signal(make_proxy, provider) -> None:
    probe = await make_proxy()
    proxy = await make_proxy(
        budgets={
            "budgets": [
                {
                    "name": "soft",
                    "scope": "agent",
                    "limit_usd": worst_case(probe) * 20,
                    "soft_thresholds": [0.00001],
                }
            ]
        }
    )
    await sdk(proxy).chat.completions.create(**BODY)
    assert proxy.signal_types() == ["budget_threshold"]


async def test_rate_limit_429_retry_after(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={"rate_limits": [{"requests_per_minute": 6, "burst_seconds": 10}]}
    )
    client = sdk(proxy, retries=0)
    await client.chat.completions.create(**BODY)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(**BODY)
    assert info.value.body["type"] == "agent_throttled"
    assert int(info.value.response.headers["retry-after"]) == 10
    assert provider.calls == 1
    await sdk(proxy, "other", retries=0).chat.completions.create(**BODY)  # per agent
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "rate_limit"}) == 1


async def test_kill_switch_blocks_at_once_until_unblocked(make_proxy, provider) -> None:
    proxy = await make_proxy()
    base = await admin(proxy)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                base + "/v1/agents/rogue/block", json={"reason": "runaway loop"}
            ) as r:
                assert r.status == 200
            with pytest.raises(openai.PermissionDeniedError) as info:
                await sdk(proxy, "rogue").chat.completions.create(**BODY)
            assert info.value.body["type"] == "agent_blocked"
            await sdk(proxy, "fine").chat.completions.create(**BODY)
            async with session.get(base + "/v1/agents") as r:
                agents = {a["agent_id"]: a for a in (await r.json())["agents"]}
            assert agents["rogue"]["blocked"] is True
            assert agents["rogue"]["blocked_reason"] == "runaway loop"
            assert agents["fine"]["blocked"] is False
            async with session.post(base + "/v1/agents/rogue/unblock") as r:
                assert (await r.json())["was_blocked"] is True
            await sdk(proxy, "rogue").chat.completions.create(**BODY)
    finally:
        await proxy.extra["admin_runner"].cleanup()
    assert provider.calls == 2


async def test_block_survives_restart(make_proxy, provider, tmp_path) -> None:
    proxy = await make_proxy(state_dir=tmp_path / "s")
    await proxy.server.gate.block("rogue", "test")
    await proxy.server.stop()
    again = await make_proxy(state_dir=tmp_path / "s")
    with pytest.raises(openai.PermissionDeniedError):
        await sdk(again, "rogue").chat.completions.create(**BODY)


async def test_restart_keeps_spend(make_proxy, provider, tmp_path) -> None:
    probe = await make_proxy()
    limit = worst_case(probe) * 2.5
    budgets = {"budgets": [{"name": "b", "scope": "agent", "limit_usd": limit}]}
    first = await make_proxy(state_dir=tmp_path / "s", budgets=budgets)
    await sdk(first).chat.completions.create(**BODY)
    base = await admin(first)
    async with aiohttp.ClientSession() as session, session.get(base + "/v1/budgets") as r:
        before = (await r.json())["budgets"][0]["subjects"][0]["spent_usd"]
    await first.extra["admin_runner"].cleanup()
    assert before > 0
    await first.server.stop()

    second = await make_proxy(state_dir=tmp_path / "s", budgets=budgets)
    base = await admin(second)
    async with aiohttp.ClientSession() as session, session.get(base + "/v1/budgets") as r:
        data = await r.json()
    await second.extra["admin_runner"].cleanup()
    subject = data["budgets"][0]["subjects"][0]
    assert subject == {
        "subject": "a1",
        "spent_usd": pytest.approx(before),
        "remaining_usd": pytest.approx(limit - before),
    }


async def test_abandoned_stream_is_settled_from_what_passed(make_proxy, provider) -> None:
    provider.chunk_delay = 0.05
    provider.reply_words = 40
    proxy = await make_proxy(
        budgets={"budgets": [{"name": "b", "scope": "agent", "limit_usd": 10.0}]}
    )
    body = {**BODY, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/openai/v1/chat/completions", json=body, headers={"X-Agent-Id": "quitter"}
        ) as r,
    ):
        await r.content.readline()
        await r.content.readline()
        # leaving the block closes the connection mid-stream
    for _ in range(100):
        if proxy.spans:
            break
        await asyncio.sleep(0.05)
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost.estimated"] is True
    assert attrs["agent_sre.cost_usd"] > 0
    assert attrs["error.type"] == "client_disconnected"
    counters = await proxy.server.store.counters()
    assert counters and counters[0].spent_usd == pytest.approx(attrs["agent_sre.cost_usd"])


async def test_unpriced_model_counted_never_zero_cost(make_proxy, provider) -> None:
    proxy = await make_proxy()
    await sdk(proxy).chat.completions.create(model="my-private-llm", messages=MESSAGES)
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost.unpriced"] is True
    assert "agent_sre.cost_usd" not in attrs
    assert proxy.metric("agent_sre_llm_unpriced_requests_total", {"model": "my-private-llm"}) == 1


async def test_price_overrides_for_private_models(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={
            "price_overrides": {
                "my-private-llm": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
            }
        }
    )
    completion = await sdk(proxy).chat.completions.create(model="my-private-llm", messages=MESSAGES)
    expected = (
        completion.usage.prompt_tokens * 1000 + completion.usage.completion_tokens * 2000
    ) / 1e6
    assert proxy.span_attrs()["agent_sre.cost_usd"] == pytest.approx(expected)


async def test_auto_throttle_paces_a_fast_spender(make_proxy, provider) -> None:
    probe = await make_proxy()
    limit = worst_case(probe) * 1.5
    proxy = await make_proxy(
        budgets={
            "auto_throttle": True,
            "auto_throttle_after": 0.0,
            "budgets": [{"name": "hourly", "scope": "agent", "limit_usd": limit, "window": "1h"}],
        }
    )
    client = sdk(proxy, retries=0)
    await client.chat.completions.create(**BODY)
    await client.chat.completions.create(**BODY)
    # two calls within seconds: kept up, this pace spends the hour's room in minutes
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(**BODY)
    assert info.value.body["type"] == "agent_throttled"
    assert "paced" in info.value.body["message"]
    assert int(info.value.response.headers["retry-after"]) > 1
    assert provider.calls == 2
    await sdk(proxy, "calm", retries=0).chat.completions.create(**BODY)  # per agent


async def test_auto_throttle_off(make_proxy, provider) -> None:
    limit = worst_case(await make_proxy()) * 1.5
    proxy = await make_proxy(
        budgets={
            "auto_throttle": False,
            "budgets": [{"name": "hourly", "scope": "agent", "limit_usd": limit, "window": "1h"}],
        }
    )
    for _ in range(3):
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    assert provider.calls == 3


async def test_admin_budgets_lists_signals(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={
            "budgets": [
                {"name": "watch", "scope": "global", "limit_usd": 0.000001, "action": "alert"}
            ]
        }
    )
    await sdk(proxy).chat.completions.create(**BODY)
    base = await admin(proxy)
    async with aiohttp.ClientSession() as session, session.get(base + "/v1/budgets") as r:
        data = await r.json()
    await proxy.extra["admin_runner"].cleanup()
    assert data["store"] == "sqlite"
    assert data["budgets"][0]["subjects"][0]["subject"] == "*"
    assert {s["kind"] for s in data["signals"]} == {"budget_threshold", "budget_exhausted"}


async def test_prune_drops_buckets_out_of_every_window(make_proxy, provider, tmp_path) -> None:
    budgets = {"budgets": [{"name": "h", "scope": "agent", "limit_usd": 10, "window": "1h"}]}
    proxy = await make_proxy(state_dir=tmp_path / "p", budgets=budgets)
    await sdk(proxy).chat.completions.create(**BODY)
    import time

    store = proxy.server.store
    assert len(await store.counters()) == 1
    await proxy.server.gate.prune(time.time() + 7200)  # two hours later
    assert await store.counters() == []
    await proxy.server.stop()
    again = await make_proxy(state_dir=tmp_path / "p", budgets=budgets)
    assert await again.server.store.counters() == []


async def test_stop_finishes_streams_in_flight_and_persists_them(
    make_proxy, provider, tmp_path
) -> None:
    provider.chunk_delay = 0.05
    provider.reply_words = 10
    budgets = {"budgets": [{"name": "b", "scope": "agent", "limit_usd": 10}]}
    proxy = await make_proxy(state_dir=tmp_path / "s", budgets=budgets)

    async def stream() -> bytes:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                proxy.url + "/openai/v1/chat/completions",
                json={**BODY, "stream": True},
                headers={"X-Agent-Id": "a1"},
            ) as r,
        ):
            return await r.read()

    task = asyncio.ensure_future(stream())
    await asyncio.sleep(0.15)  # mid-stream
    await proxy.server.stop()
    body = await task
    assert body.endswith(b"data: [DONE]\n\n")
    assert proxy.span_attrs()["agent_sre.cost.estimated"] is False
    again = await make_proxy(state_dir=tmp_path / "s", budgets=budgets)
    counters = await again.server.store.counters()
    assert counters[0].spent_usd == pytest.approx(proxy.span_attrs()["agent_sre.cost_usd"])


async def test_auto_throttle_leaves_early_bursts_alone(make_proxy, provider) -> None:
    limit = worst_case(await make_proxy()) * 1.5
    proxy = await make_proxy(
        budgets={
            "auto_throttle": True,
            "budgets": [{"name": "hourly", "scope": "agent", "limit_usd": limit, "window": "1h"}],
        }
    )
    for _ in range(3):  # under half the budget used: no pacing
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    counters = await proxy.server.store.counters()
    assert counters[0].spent_usd < limit / 2
    assert provider.calls == 3


async def test_refusal_wins_over_pacing(make_proxy, provider) -> None:
    limit = worst_case(await make_proxy()) * 1.05
    proxy = await make_proxy(
        budgets={
            "auto_throttle": True,
            "auto_throttle_after": 0.0,
            "budgets": [{"name": "hourly", "scope": "agent", "limit_usd": limit, "window": "1h"}],
        }
    )
    await sdk(proxy, retries=0).chat.completions.create(**BODY)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    assert info.value.body["type"] == "budget_exceeded"


async def test_long_throttle_tells_sdks_not_to_retry(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={
            "budgets": [
                {
                    "name": "d",
                    "scope": "agent",
                    "limit_usd": 1e-9,
                    "action": "throttle",
                    "window": "month",
                }
            ]
        }
    )
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(proxy, retries=2).chat.completions.create(**BODY)
    assert info.value.response.headers["x-should-retry"] == "false"
    assert (
        proxy.metric("agent_sre_proxy_requests_total", {"route": "openai", "status": "429"}) == 1
    )  # no retry sent
