"""Bug 5: the proxy inflates a compressed response within a limit (a gzip bomb cannot take
the daemon's memory); past the limit usage is unknown and the call settles at its
reservation; the client gets the upstream's bytes untouched either way."""

from __future__ import annotations

import gzip
import json
import zlib

import aiohttp
import pytest

from agent_sre_daemon.proxy.stages.upstream import USAGE_READ_LIMIT
from tests.proxy.odd_upstream import odd_routes

BUDGET = {"budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3}


def big_json(size: int) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "pad": " " * size, "usage": USAGE}).encode()


async def post(url: str, body: dict) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(
            url, json=body, headers={"X-Agent-Id": "a1", "Accept-Encoding": "gzip, deflate"}
        ) as r,
    ):
        return r.status, await r.read()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_not_inflated_past_the_limit(make_proxy, odd, encoding):
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    raw = big_json(USAGE_READ_LIMIT + 1024)
    odd.body = gzip.compress(raw, 9) if encoding == "gzip" else zlib.compress(raw, 9)
    odd.headers = {"Content-Encoding": encoding}
    assert len(odd.body) < USAGE_READ_LIMIT // 100
    status, body = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    assert body == odd.body  # untouched, still compressed
    attrs = proxy.span_attrs()
    assert "limit" in attrs["agent_sre.usage.invalid"]
    budgets = await proxy.server.gate.budgets(0.0 + proxy.server.clock.time())
    assert budgets[0]["subjects"][0]["spent_usd"] > 0


async def test_a_small_compressed_response_is_still_read(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    odd.body = gzip.compress(big_json(1000))
    odd.headers = {"Content-Encoding": "gzip"}
    status, body = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    assert body == odd.body
    assert proxy.span_attrs()["gen_ai.usage.input_tokens"] == 7


async def test_corrupt_compressed_data_passes_with_unknown_usage(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    odd.body = b"\x1f\x8b\x08\x00garbage-not-gzip"
    odd.headers = {"Content-Encoding": "gzip"}
    status, body = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    assert body == odd.body
    assert proxy.span_attrs()["agent_sre.cost.estimated"] is True


async def test_a_large_sized_json_response_streams_through(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    odd.body = big_json(USAGE_READ_LIMIT + 10)
    status, body = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    assert body == odd.body
    assert "limit" in proxy.span_attrs()["agent_sre.usage.invalid"]


async def test_a_large_unsized_json_response_streams_through(make_proxy, odd) -> None:
    proxy = await make_proxy(budgets=BUDGET, routes=odd_routes(odd.url))
    raw = big_json(USAGE_READ_LIMIT + 10)
    odd.stream_type = "application/json"
    odd.events = [raw[i : i + (1 << 20)] for i in range(0, len(raw), 1 << 20)]
    status, body = await post(proxy.url + "/odd-openai/v1/chat/completions", CHAT)
    assert status == 200
    assert body == raw
    assert "limit" in proxy.span_attrs()["agent_sre.usage.invalid"]
