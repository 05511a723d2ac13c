"""The fleet component in-process on a ManualClock, two nodes sharing a real redis-server:
the node's clock (not Redis's) decides up, stale and dropped out, so TTLs are driven here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from agent_sre.config import Config
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AgentSpan
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.fleet.runtime import FleetRuntime
from agent_sre_daemon.slo.runtime import SLORuntime
from tests.support.context import node_context
from tests.support.receivers import free_port
from tests.support.redis_server import REDIS, RedisServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TTL, INTERVAL = 30.0, 10.0


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if REDIS is None:
        pytest.skip("redis-server is not installed (tests/setup-services.sh installs it)")
    server = RedisServer(tmp_path).start()
    yield server.url
    server.stop()


def node(
    tmp_path: Path, name: str, clock: ManualClock, url: str
) -> tuple[FleetRuntime, SLORuntime]:
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path / name),
            "budgets": {"redis_url": url},
            "fleet": {"store": "redis", "publish_interval": INTERVAL, "ttl": TTL},
            "slos": [{"name": "chat", "target": 0.99, "sli": {"kind": "llm_success"}}],
        }
    )
    context = node_context(config, clock, node_name=name)
    slo = SLORuntime(context)
    return FleetRuntime(context), slo


def calls(fleet: FleetRuntime, slo: SLORuntime, agent: str, good: int, bad: int) -> None:
    now = fleet.clock.time()
    for i in range(good + bad):
        span = AgentSpan(AgentSpanKind.LLM_INFERENCE, False, "chat", b"t", b"s", 0, 1,
                         i >= good, {"agent.id": agent})  # fmt: skip
        slo.engine.observe(span, now)
        fleet.registry.observe(span, now)


async def test_up_stale_and_dropped_out_follow_the_nodes_clock(
    tmp_path: Path, redis_url: str
) -> None:
    clock = ManualClock(1_800_000_000.0)
    one, slo_one = node(tmp_path, "n1", clock, redis_url)
    two, slo_two = node(tmp_path, "n2", clock, redis_url)
    for fleet in (one, two):
        await fleet.start()  # its first round runs in the background: done below by hand
    try:
        calls(one, slo_one, "alpha", 10, 0)
        calls(two, slo_two, "beta", 0, 5)
        await two.refresh()
        view = await one.refresh()
        assert view.covers == {"nodes": 2, "up": 2, "stale": 0}
        assert (view.slos[0]["good"], view.slos[0]["total"]) == (10, 15)

        clock.advance(2 * INTERVAL + 2)  # n2 silent for two rounds: stale, still counted
        view = await one.refresh()
        assert [(n.summary.node, n.state) for n in view.nodes] == [("n1", "up"), ("n2", "stale")]
        assert view.slos[0]["total"] == 15

        clock.advance(TTL)  # older than the TTL: dropped out (its Redis key still lives)
        view = await one.refresh()
        assert view.covers == {"nodes": 1, "up": 1, "stale": 0}
        assert view.expired == ["n2"]
        assert (view.slos[0]["good"], view.slos[0]["total"], view.slos[0]["nodes"]) == (10, 10, 1)
        assert view.agent("beta") is None

        await two.refresh()  # back
        view = await one.refresh()
        assert view.covers == {"nodes": 2, "up": 2, "stale": 0}
        assert view.agent("beta") is not None
    finally:
        for fleet in (one, two):
            await fleet.stop(clock.monotonic() + 5)


async def test_an_unreachable_store_is_this_node_with_the_error(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    fleet, slo = node(tmp_path, "n1", clock, f"redis://127.0.0.1:{free_port()}/0")
    await fleet.start()
    try:
        calls(fleet, slo, "alpha", 3, 1)
        view = await fleet.refresh()
        assert fleet.scope == "node"
        state = fleet.store_state()
        assert state["kind"] == "redis" and state["ok"] is False
        assert state["error"].startswith("redis: ") and "127.0.0.1" in state["error"]
        assert view.covers == {"nodes": 1, "up": 1, "stale": 0}
        assert (view.slos[0]["good"], view.slos[0]["total"]) == (3, 4)
    finally:
        await fleet.stop(clock.monotonic() + 5)
