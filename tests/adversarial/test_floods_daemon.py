"""A flood of spoofed ``X-Agent-Id`` values against the real daemon: every spoofed agent is
refused by its budget (a warning signal each), and meanwhile the upstream of another route
fails and its circuit opens (a critical signal). The incident of the open circuit is raised
however many warnings are waiting, and what the incidents engine missed is counted."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.metrics import scrape
from tests.support.stand_in import ThreadedProvider

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fakes.provider import FakeProvider

SPOOFED = 3000
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with ThreadedProvider() as fake:
        yield fake


def incidents(daemon: Any) -> list[dict[str, Any]]:
    with urllib.request.urlopen(daemon.url("admin", "/v1/incidents"), timeout=10) as response:
        rows: list[dict[str, Any]] = json.load(response)["incidents"]
    return rows


def test_a_flood_of_spoofed_agents_never_costs_the_incident_of_an_open_circuit(
    make_daemon: Any, provider: FakeProvider
) -> None:
    routes = [
        {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"},
        {"name": "raw", "prefix": "/raw", "upstream": provider.url, "api": "passthrough"},
    ]
    daemon = make_daemon(
        {
            "proxy": {"routes": routes},
            # every spoofed agent's first call is refused: one warning signal per agent id
            "budgets": {"budgets": [{"name": "per-agent", "scope": "agent", "limit_usd": 1e-9}]},
            "incidents": {
                "group_by": ["agent_id"],  # one incident per spoofed agent: a slow consumer
                "circuit_breakers": [
                    {"name": "raw", "routes": ["raw"], "min_calls": 4, "error_ratio": 0.5}
                ],
            },
        }
    ).start()
    proxy = f"http://{daemon.addresses['proxy']}"
    done = threading.Event()
    deep = threading.Event()

    def flood() -> None:
        with httpx.Client(timeout=30) as client:

            def one(index: int) -> None:
                client.post(f"{proxy}/openai/v1/chat/completions", json=CHAT,
                            headers={"X-Agent-Id": f"spoofed-{index}"})  # fmt: skip
                if index == SPOOFED * 2 // 3:
                    deep.set()

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, range(SPOOFED)))
        done.set()

    flooding = threading.Thread(target=flood)
    flooding.start()
    assert deep.wait(120)
    # deep in the flood the incidents engine is far behind, its queue full of warnings
    provider.status = 500
    for _ in range(4):  # the raw route's upstream fails: its circuit opens (critical)
        answer = httpx.post(f"{proxy}/raw/v1/chat/completions", json=CHAT, timeout=10)
        assert answer.status_code == 500
    provider.status = 200
    flooding.join(120)
    assert done.is_set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        opened = [i for i in incidents(daemon) if i["type"] == "circuit_state"]
        if opened:
            break
        time.sleep(0.5)
    assert opened, "the open circuit raised no incident"
    assert opened[0]["severity"] == "critical"
    missed = scrape(daemon.url("metrics", "/metrics")).get(
        ("agent_sre_signal_subscriber_missed_total", (("subscriber", "incidents"),)), 0.0
    )
    # the warnings that did not fit were dropped and counted, never the critical signal
    print(f"incidents subscriber missed {missed:g} of {SPOOFED} warnings")
