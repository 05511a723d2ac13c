"""Shadow copies under load, against the real daemon and stand-in providers: their spend is
reserved before each copy is sent (a tiny shadow budget is never overspent by copies in
flight at once), and copies to a candidate that hangs are bounded in flight, the rest not
sent and counted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.metrics import scrape
from tests.support.stand_in import ThreadedProvider

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fakes.provider import FakeProvider
    from tests.support.daemon import DaemonProcess

CHAT = {"model": "gpt-4o-mini", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hello there"}]}  # fmt: skip


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with ThreadedProvider() as fake:
        yield fake


@pytest.fixture
def candidate() -> Iterator[FakeProvider]:
    with ThreadedProvider() as fake:
        yield fake


def shadow_daemon(make_daemon: Any, provider: FakeProvider, candidate: FakeProvider,
                  budget: float) -> DaemonProcess:  # fmt: skip
    rollout = {
        "name": "shadowed",
        "route": "openai",
        "vary": "upstream",
        "candidate": candidate.url,
        "mode": "shadow",
        "steps": [{"weight": 100, "duration": "1h"}],
        "shadow_budget_usd": budget,
    }
    route = {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"}
    config = {"proxy": {"routes": [route]}, "rollouts": {"rollouts": [rollout]}}
    return make_daemon(config).start()


def flood(daemon: DaemonProcess, calls: int) -> None:
    url = f"http://{daemon.addresses['proxy']}/openai/v1/chat/completions"
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=calls)) as client:

        def one(index: int) -> int:
            headers = {"X-Agent-Id": f"agent-{index}", "Authorization": "Bearer sk-test"}
            return client.post(url, json=CHAT, headers=headers).status_code

        with ThreadPoolExecutor(32) as pool:
            assert set(pool.map(one, range(calls))) == {200}


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float:
    found = scrape(daemon.url("metrics", "/metrics"))
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


def test_a_tiny_shadow_budget_is_never_overspent_by_copies_in_flight(
    make_daemon, provider: FakeProvider, candidate: FakeProvider
) -> None:
    candidate.latency = 1.0  # every copy is in flight before the first one is priced
    daemon = shadow_daemon(make_daemon, provider, candidate, budget=0.0001)
    flood(daemon, 64)
    daemon.stop()  # waits for the copies in flight
    spent_line = [line for line in daemon.log().splitlines() if "shadow" in line.lower()]
    assert candidate.calls >= 1, spent_line  # some copies went (the budget allows a few)
    assert candidate.calls < 64
    # each copy cost about $0.000004; the budget allows at most its worth of reservations
    assert candidate.calls * 4e-6 <= 0.0001 + 1e-5


def test_copies_to_a_hanging_candidate_are_bounded_in_flight_and_counted(
    make_daemon, provider: FakeProvider, candidate: FakeProvider
) -> None:
    candidate.latency = 8.0  # hangs for as long as the test runs
    daemon = shadow_daemon(make_daemon, provider, candidate, budget=100.0)
    flood(daemon, 150)
    assert candidate.calls <= 64
    assert metric(daemon, "agent_sre_state_evictions_total", map="shadow_in_flight") >= 150 - 64
