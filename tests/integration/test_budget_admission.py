"""Budgets admit what they cover: with the shipped defaults, 50 concurrent calls against a
budget that covers exactly 10 let exactly 10 through, whatever the timing."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess

MODEL = "budget-model"
OUTPUT_TOKENS = 5
PER_MTOK = 1000.0
CALL_COST = OUTPUT_TOKENS * PER_MTOK / 1_000_000  # input is free: worst case == actual
CONCURRENT = 50
COVERED = 10
ROUNDS = 4


async def one_call(session: aiohttp.ClientSession, url: str, agent: str) -> tuple[int, str]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": OUTPUT_TOKENS,
    }
    headers = {"X-Agent-Id": agent, "Authorization": "Bearer sk-test"}
    async with session.post(url, json=body, headers=headers) as response:
        data: Any = json.loads(await response.read())
        kind = data.get("error", {}).get("type", "") if response.status != 200 else ""
        return response.status, kind


async def burst(url: str, agent: str) -> list[tuple[int, str]]:
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one_call(session, url, agent) for _ in range(CONCURRENT)))


def test_concurrent_calls_admit_exactly_what_the_budget_covers(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(
        {
            "proxy": {
                "endpoint": "127.0.0.1:0",
                "routes": [
                    {
                        "name": "openai",
                        "prefix": "/openai",
                        "upstream": provider_url,
                        "api": "openai",
                    }
                ],
            },
            "budgets": {  # shipped defaults otherwise (auto_throttle included)
                "price_overrides": {MODEL: {"input_per_mtok": 0.0, "output_per_mtok": PER_MTOK}},
                "budgets": [
                    {
                        "name": "per-agent",
                        "scope": "agent",
                        "limit_usd": CALL_COST * (COVERED + 0.5),
                        "window": "day",
                    }
                ],
            },
        }
    ).start()
    url = daemon.url("proxy", "/openai/v1/chat/completions")
    for round_ in range(ROUNDS):  # a fresh agent (a fresh budget subject) each round
        outcomes = asyncio.run(burst(url, f"agent-{round_}"))
        admitted = [o for o in outcomes if o[0] == 200]
        refused = [o for o in outcomes if o[0] != 200]
        assert len(admitted) == COVERED, outcomes
        assert set(refused) == {(403, "budget_exceeded")}, outcomes
