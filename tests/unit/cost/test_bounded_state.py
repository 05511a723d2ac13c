"""State kept per agent or task id is bounded whatever ids clients invent."""

from __future__ import annotations

from agent_sre.cost import anomaly, pacing, ratelimit
from agent_sre.cost.budgets import CallIdentity
from agent_sre.cost.guard import MAX_FIRED, CostGuard
from agent_sre.cost.ledger import BudgetLedger, Charge, Reservation
from agent_sre.cost.spec import BudgetsConfig

NOW = 1_760_000_000.0


def config() -> BudgetsConfig:
    return BudgetsConfig.model_validate(
        {
            "budgets": [
                {"name": "task", "scope": "task", "limit_usd": 1.0, "window": "per_task"},
                {"name": "agent", "scope": "agent", "limit_usd": 1.0, "window": "day"},
            ],
            "rate_limits": [{"requests_per_minute": 600, "tokens_per_minute": 60_000}],
        }
    )


def test_guard_maps_stay_under_their_caps_and_count_evictions() -> None:
    evicted: dict[str, int] = {}

    def count(name: str, key: object) -> None:
        evicted[name] = evicted.get(name, 0) + 1

    guard = CostGuard(config(), "node", count)
    ids = 25_000
    for i in range(ids):
        who = CallIdentity(f"agent-{i}", f"task-{i}")
        assert guard.admit(who, 100, NOW) is None
        charges = [(c, 1.0) for c in guard.charges(who, NOW)]  # every budget exhausted
        guard.settled(who, 0.02, charges, NOW)
    sizes = guard.state_sizes()
    assert sizes == {
        "rate_limit_buckets": ratelimit.MAX_BUCKETS,
        "pacing": pacing.MAX_AGENTS,
        "anomaly": anomaly.MAX_AGENTS,
        "budget_signals": MAX_FIRED,
    }
    assert evicted == {
        "rate_limit_buckets": 2 * ids - ratelimit.MAX_BUCKETS,
        "pacing": ids - pacing.MAX_AGENTS,
        "anomaly": ids - anomaly.MAX_AGENTS,
        "budget_signals": 4 * ids - MAX_FIRED,  # two budgets x (80%, 100%)
    }


def test_rate_limit_bucket_dropped_once_refilled_changes_nothing() -> None:
    guard = CostGuard(config(), "node")
    who = CallIdentity("a")
    for _ in range(100):  # the 10 s burst of 600/min
        assert guard.admit(who, 0, NOW) is None
    assert guard.admit(who, 0, NOW) is not None  # empty now
    other = CallIdentity("b")
    guard.admit(other, 0, NOW + 60.0)  # a later write sweeps idle buckets
    for _ in range(100):
        assert guard.admit(who, 0, NOW + 60.0) is None  # refilled (new and full)


def test_ledger_keeps_at_most_its_cap_and_hands_evicted_counters_to_the_store() -> None:
    heard: list[object] = []
    ledger = BudgetLedger(lambda name, key: heard.append(key), max_counters=100)
    for i in range(250):
        charge = Charge("task", f"t{i}", 0, 1, 1.0, True)
        reservation = ledger.reserve((charge,), 0.1)
        assert isinstance(reservation, Reservation)
        ledger.settle(reservation, 0.05)
    assert len(ledger) == 100
    assert ledger.counters()[0] == "task|t150"
    evicted = ledger.take_evicted()
    assert evicted == [f"task|t{i}" for i in range(150)] == heard
    assert ledger.take_evicted() == []
    rows = ledger.take_dirty()
    assert {key for key, _, _ in rows} == {f"task|t{i}" for i in range(150, 250)}


def test_prune_forgets_counters_left_empty() -> None:
    ledger = BudgetLedger()
    ledger.add_spent("agent|a", 10, 1.0)
    ledger.add_spent("agent|b", 12, 1.0)
    ledger.prune({"agent": 11})
    assert ledger.counters() == ["agent|b"]
    assert ledger.take_evicted() == []  # expired by its window, not evicted
