"""A flood of signals about client-chosen ids (spoofed ``X-Agent-Id``) must never cost a
critical signal: a subscriber's full queue makes room by dropping its quietest signal, and
every drop is counted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent_sre.signals import Severity, Signal
from agent_sre_daemon.signals import SignalBus


def signal(severity: Severity, agent: str, type_: str = "budget_refused") -> Signal:
    return Signal(type=type_, source="budgets", severity=severity, at=0.0,
                  message=f"agent {agent}", labels={"agent_id": agent})  # fmt: skip


async def test_criticals_are_never_dropped_in_favour_of_warnings() -> None:
    registry = CollectorRegistry()
    bus = SignalBus(registry)
    queue = bus.subscribe("incidents", maxsize=100)
    for index in range(60):
        bus.publish(signal(Severity.WARNING, f"spoofed-{index}"))
    for index in range(5):
        bus.publish(signal(Severity.CRITICAL, f"real-{index}", "circuit_state"))
    for index in range(60, 5000):  # the flood goes on after the criticals
        bus.publish(signal(Severity.WARNING, f"spoofed-{index}"))
    bus.publish(signal(Severity.INFO, "quiet"))  # the quietest never pushes out louder ones
    got = []
    while (item := queue.get_nowait()) is not None:
        got.append(item)
    criticals = [s.labels["agent_id"] for s in got if s.severity is Severity.CRITICAL]
    assert criticals == [f"real-{index}" for index in range(5)]
    assert len(got) == 100
    assert [s for s in got if s.severity is Severity.INFO] == []
    # publication order is kept among what was delivered
    order = [s.labels["agent_id"] for s in got]
    assert order.index("real-0") > order.index("spoofed-0")
    dropped = registry.get_sample_value(
        "agent_sre_signal_subscriber_missed_total", {"subscriber": "incidents"}
    )
    assert dropped == 5006 - 100  # one drop for each signal past the 100 kept


async def test_a_queue_full_of_criticals_drops_the_newest_quieter_signal_first() -> None:
    bus = SignalBus(CollectorRegistry())
    queue = bus.subscribe("incidents", maxsize=3)
    for index in range(3):
        bus.publish(signal(Severity.CRITICAL, f"c{index}", "circuit_state"))
    bus.publish(signal(Severity.WARNING, "w"))
    bus.publish(signal(Severity.CRITICAL, "c3", "circuit_state"))
    got = []
    while (item := queue.get_nowait()) is not None:
        got.append(item.labels["agent_id"])
    assert got == ["c0", "c1", "c2"]  # the warning and the 4th critical could not fit
    assert queue.missed == 2
