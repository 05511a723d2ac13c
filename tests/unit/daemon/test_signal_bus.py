"""The signal bus: ordered delivery, bounded subscribers that never block a publisher, what a
slow subscriber misses is counted, recent signals filtered for /v1/signals."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from agent_sre.signals import Severity, Signal, SignalState
from agent_sre.slo.alerts import Status, StatusChange
from agent_sre_daemon.signals import SignalBus


def signal(n: int, type_: str = "t", source: str = "s") -> Signal:
    return Signal(type_, source, Severity.INFO, at=float(n), message=f"#{n}", value=float(n))


async def test_subscribers_get_signals_in_order() -> None:
    bus = SignalBus(CollectorRegistry())
    first, second = bus.subscribe("first"), bus.subscribe("second")
    for n in range(5):
        bus.publish(signal(n))
    assert [(await first.get()).value for _ in range(5)] == [0, 1, 2, 3, 4]
    assert [(await second.get()).value for _ in range(5)] == [0, 1, 2, 3, 4]
    assert first.get_nowait() is None


async def test_a_slow_subscriber_never_blocks_and_its_misses_are_counted() -> None:
    registry = CollectorRegistry()
    bus = SignalBus(registry)
    slow = bus.subscribe("slow", maxsize=3)
    fast = bus.subscribe("fast", maxsize=100)
    for n in range(10):
        bus.publish(signal(n))  # returns at once although nobody reads "slow"
    assert slow.missed == 7
    assert (
        registry.get_sample_value(
            "agent_sre_signal_subscriber_missed_total", {"subscriber": "slow"}
        )
        == 7
    )
    assert [slow.get_nowait().value for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    assert [fast.get_nowait().value for _ in range(10)] == list(range(10))  # type: ignore[union-attr]
    assert registry.get_sample_value("agent_sre_signals_total", {"source": "s", "type": "t"}) == 10


async def test_a_waiting_subscriber_wakes_on_publish() -> None:
    bus = SignalBus(CollectorRegistry())
    sub = bus.subscribe("waiter")
    waiting = asyncio.ensure_future(sub.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    bus.publish(signal(1))
    assert (await asyncio.wait_for(waiting, 1)).value == 1
    sub.close()
    bus.publish(signal(2))
    assert sub.get_nowait() is None


def test_recent_is_bounded_and_filtered() -> None:
    bus = SignalBus(CollectorRegistry(), recent=5)
    for n in range(10):
        bus.publish(signal(n, type_="a" if n % 2 else "b", source="x" if n < 8 else "y"))
    # each source keeps its last five: a flood from x does not push y out, nor y x
    assert [s.value for s in bus.recent()] == [3, 4, 5, 6, 7, 8, 9]
    assert [s.value for s in bus.recent(type_="a")] == [3, 5, 7, 9]
    assert [s.value for s in bus.recent(source="y")] == [8, 9]
    assert [s.value for s in bus.recent(since=5)] == [5, 6, 7, 8, 9]
    assert [s.value for s in bus.recent(limit=2)] == [8, 9]


def test_slo_status_changes_are_signals_in_the_one_shape() -> None:
    change = StatusChange(
        "tasks", {"agent.id": "a1"}, Status.HEALTHY, Status.CRITICAL, 100.0, ("page-1h",), 0.25
    )
    sig = change.to_signal()
    assert (sig.type, sig.source, sig.severity, sig.state) == (
        "slo_status",
        "slo",
        Severity.CRITICAL,
        SignalState.FIRING,
    )
    assert sig.labels == {"slo": "tasks", "agent.id": "a1"}
    assert sig.to_dict()["details"] == change.to_dict()
    back = StatusChange("tasks", {}, Status.CRITICAL, Status.HEALTHY, 200.0).to_signal()
    assert back.state is SignalState.RESOLVED
