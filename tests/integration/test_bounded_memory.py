"""Distinct agent ids and task ids by the hundred thousand through the proxy and the receiver
of the real daemon: per-client state stays under its caps and the daemon's memory under the
documented bound (docs/proxy.md, "State bounded by configuration").

The receiver takes 200,000 distinct ids (batched, seconds). A proxied call costs the daemon
about a millisecond of CPU whatever is done, so by default 20,000 distinct ids go through the
proxy, twice every per-agent cap (every map is full and evicting); set
``AGENT_SRE_TEST_PROXY_IDS=200000`` for the full run (about 6 minutes on a shared 2-core VM).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import psutil

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape
from tests.support.spans import make_request

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.upstream import RecordingUpstream

ROOT = Path(__file__).parents[2]
DISTINCT = 200_000
PROXY_IDS = int(os.environ.get("AGENT_SRE_TEST_PROXY_IDS", "20000"))
RSS_BOUND_MIB = 256  # docs/proxy.md: "State bounded by configuration"
PROXY_CONCURRENCY = 32
SPANS_PER_REQUEST = 2000


async def through_the_proxy(proxy: str, count: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    ).encode()
    url = f"http://{proxy}/openai/v1/chat/completions"
    ids = iter(range(count))
    connector = aiohttp.TCPConnector(limit=PROXY_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in ids:
                headers = {
                    "Content-Type": "application/json",
                    "Authorization": "Bearer sk-test",
                    "X-Agent-Id": f"proxy-agent-{i}",
                    "X-Agent-Task-Id": f"proxy-task-{i}",
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(PROXY_CONCURRENCY)))
    return statuses


def receiver_bodies(count: int) -> Iterator[bytes]:
    for start in range(0, count, SPANS_PER_REQUEST):
        request = make_request(SPANS_PER_REQUEST, attributes_per_span=4)
        for n, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
            for kv in span.attributes:
                if kv.key == "agent.id":
                    kv.value.string_value = f"otlp-agent-{start + n}"
                elif kv.key == "agent.task.id":
                    kv.value.string_value = f"otlp-task-{start + n}"
        yield request.SerializeToString()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_distinct_ids_cost_bounded_memory(
    make_daemon, upstream: RecordingUpstream, provider_url: str
) -> None:
    config: dict[str, Any] = forwarding(upstream, batch={"max_size_mib": 8})
    config["proxy"] = {
        "endpoint": "127.0.0.1:0",
        "routes": [
            {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
        ],
    }
    config["budgets"] = {
        "budgets": [
            {"name": "per-task", "scope": "task", "limit_usd": 1.0, "window": "per_task"},
            {"name": "per-agent", "scope": "agent", "limit_usd": 5.0, "window": "day"},
        ],
        "rate_limits": [{"requests_per_minute": 600, "tokens_per_minute": 100_000}],
    }
    config["slos"] = [
        {
            "name": "tasks",
            "target": 0.99,
            "window": "30d",
            "sli": {"kind": "task_success"},
            "labels": ["agent.id"],
        }
    ]
    daemon = make_daemon(config).start()
    process = psutil.Process(daemon.addresses["pid"])
    started = time.monotonic()

    traces_url = daemon.url("otlp_http", "/v1/traces")
    for body in receiver_bodies(DISTINCT):
        assert post(traces_url, body) == 200
    received = time.monotonic() - started
    statuses = asyncio.run(through_the_proxy(daemon.addresses["proxy"], PROXY_IDS))
    assert statuses == {200: PROXY_IDS}
    proxied = time.monotonic() - started - received

    rss_mib = process.memory_info().rss / 2**20
    samples = scrape(daemon.url("metrics", "/metrics"))
    evictions = {
        dict(labels)["map"]: value
        for (name, labels), value in samples.items()
        if name == "agent_sre_state_evictions_total"
    }
    with urllib.request.urlopen(daemon.url("admin", "/v1/agents"), timeout=10) as response:
        agents = json.load(response)["agents"]
    print(
        f"\n{DISTINCT} ids received in {received:.1f}s, {PROXY_IDS} proxied in {proxied:.1f}s;"
        f" daemon RSS {rss_mib:.0f} MiB; evictions {evictions}"
    )

    assert rss_mib < RSS_BOUND_MIB
    assert len(agents) <= 10_000
    for name in ("proxy_agents", "rate_limit_buckets", "pacing", "ledger_counters"):
        assert evictions.get(name, 0) > 0, name
    assert daemon.alive()
