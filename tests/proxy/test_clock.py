"""Budget windows, rate limits, pacing and refusal signals on the node's clock: a
ManualClock is moved instead of sleeping."""

from __future__ import annotations

import openai
import pytest

from agent_sre_daemon.clock import ManualClock
from tests.proxy.test_budgets import BODY, sdk, worst_case

MIDNIGHT = 1_700_006_400.0  # 2023-11-15T00:00:00Z, a day boundary


async def outcome(proxy, agent: str = "a1") -> str:
    try:
        await sdk(proxy, agent, retries=0).chat.completions.create(**BODY)
    except openai.APIStatusError as exc:
        return str(exc.body["type"])
    return "ok"


async def test_day_budget_frees_room_when_the_clock_passes_midnight(make_proxy, provider) -> None:
    clock = ManualClock(MIDNIGHT - 30)
    limit = worst_case(await make_proxy()) * 1.05  # one call's worst case, not two
    proxy = await make_proxy(
        clock=clock,
        budgets={
            "auto_throttle": False,
            "budgets": [{"name": "daily", "scope": "agent", "limit_usd": limit, "window": "day"}],
        },
    )
    assert await outcome(proxy) == "ok"
    assert await outcome(proxy) == "budget_exceeded"
    clock.advance(29)
    assert await outcome(proxy) == "budget_exceeded"  # still the same day
    clock.advance(2)
    assert await outcome(proxy) == "ok"
    assert provider.calls == 2


async def test_rolling_hour_forgets_spend_an_hour_later(make_proxy, provider) -> None:
    clock = ManualClock(MIDNIGHT + 5)
    limit = worst_case(await make_proxy()) * 1.05
    proxy = await make_proxy(
        clock=clock,
        budgets={
            "auto_throttle": False,
            "budgets": [{"name": "hourly", "scope": "agent", "limit_usd": limit, "window": "1h"}],
        },
    )
    assert await outcome(proxy) == "ok"
    clock.advance(59 * 60)
    assert await outcome(proxy) == "budget_exceeded"  # the first minute is still in the hour
    clock.advance(60)
    assert await outcome(proxy) == "ok"


async def test_throttled_budget_admits_again_after_retry_after(make_proxy, provider) -> None:
    clock = ManualClock(MIDNIGHT - 600)
    limit = worst_case(await make_proxy()) * 1.05
    proxy = await make_proxy(
        clock=clock,
        budgets={
            "auto_throttle": False,
            "budgets": [
                {
                    "name": "daily",
                    "scope": "agent",
                    "limit_usd": limit,
                    "window": "day",
                    "action": "throttle",
                }
            ],
        },
    )
    assert await outcome(proxy) == "ok"
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    retry_after = int(info.value.response.headers["retry-after"])
    assert retry_after == 600
    clock.advance(retry_after - 1)
    assert await outcome(proxy) == "agent_throttled"
    clock.advance(1)
    assert await outcome(proxy) == "ok"


async def test_rate_limited_agent_admitted_after_retry_after(make_proxy, provider) -> None:
    clock = ManualClock()
    proxy = await make_proxy(
        clock=clock, budgets={"rate_limits": [{"requests_per_minute": 6, "burst_seconds": 10}]}
    )
    assert await outcome(proxy) == "ok"
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    retry_after = float(info.value.response.headers["retry-after"])
    assert retry_after == 10
    clock.advance(retry_after / 2)
    assert await outcome(proxy) == "agent_throttled"
    clock.advance(retry_after / 2)
    assert await outcome(proxy) == "ok"
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "rate_limit"}) == 2


async def test_paced_agent_admitted_after_retry_after_and_counted_as_pacing(
    make_proxy, provider
) -> None:
    clock = ManualClock(MIDNIGHT + 5)
    limit = worst_case(await make_proxy()) * 1.5
    proxy = await make_proxy(
        clock=clock,
        budgets={
            "auto_throttle": True,  # pacing is off by default
            "auto_throttle_after": 0.0,
            "budgets": [{"name": "hourly", "scope": "agent", "limit_usd": limit, "window": "1h"}],
        },
    )
    assert await outcome(proxy) == "ok"
    assert await outcome(proxy) == "ok"
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(proxy, retries=0).chat.completions.create(**BODY)
    assert "paced" in info.value.body["message"]
    retry_after = float(info.value.response.headers["retry-after"])
    # the documented label: pacing refusals are not the budget's own refusals
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "pacing"}) == 1
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "hourly"}) == 0
    clock.advance(retry_after)
    assert await outcome(proxy) == "ok"


async def test_refusals_signal_once_a_minute_per_agent_and_rule(make_proxy, provider) -> None:
    clock = ManualClock()
    proxy = await make_proxy(
        clock=clock,
        budgets={"budgets": [{"name": "tiny", "scope": "agent", "limit_usd": 1e-9}]},
    )
    for _ in range(3):
        assert await outcome(proxy) == "budget_exceeded"
    assert await outcome(proxy, "other") == "budget_exceeded"
    clock.advance(59)
    assert await outcome(proxy) == "budget_exceeded"
    refused = [s for s in proxy.bus.recent(source="budgets") if s.type == "budget_refused"]
    assert [(s.labels["agent_id"], s.value) for s in refused] == [("a1", 1.0), ("other", 1.0)]
    clock.advance(2)
    assert await outcome(proxy) == "budget_exceeded"
    last = proxy.bus.recent(source="budgets")[-1]
    assert last.type == "budget_refused"
    assert last.value == 4.0  # three counted quietly, and this one
    assert last.at == clock.time()
    assert last.labels == {"agent_id": "a1", "budget": "tiny", "kind": "budget_exceeded"}
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "tiny"}) == 6


async def test_signals_carry_the_clock_time(make_proxy, provider) -> None:
    clock = ManualClock()
    proxy = await make_proxy(
        clock=clock,
        budgets={
            "budgets": [{"name": "w", "scope": "global", "limit_usd": 1e-9, "action": "alert"}]
        },
    )
    assert await outcome(proxy) == "ok"
    exhausted = [s for s in proxy.bus.recent(source="budgets") if s.type == "budget_exhausted"]
    assert [s.at for s in exhausted] == [clock.time()]
    proxy.server.gate.store_error("disk on fire")
    assert proxy.bus.recent(source="budgets")[-1].at == clock.time()
