from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.cost.ledger import BudgetLedger, Charge, Refusal, Reservation
from agent_sre.cost.windows import position


def charge(budget="b", subject="a", bucket=10, span=1, limit=1.0, enforce=True) -> Charge:
    return Charge(budget, subject, bucket, span, limit, enforce)


def test_reserve_books_every_charge_or_none() -> None:
    ledger = BudgetLedger()
    a, b = charge("a", limit=1.0), charge("b", limit=0.5)
    first = ledger.reserve((a, b), 0.4)
    assert isinstance(first, Reservation)
    refused = ledger.reserve((a, b), 0.2)
    assert isinstance(refused, Refusal) and refused.charge == b
    assert refused.reserved_usd == 0.4
    assert ledger.window_total(a) == (0.0, 0.4)  # nothing booked on a by the refusal


def test_reservations_hold_room_until_settled() -> None:
    ledger = BudgetLedger()
    c = charge(limit=1.0)
    held = [ledger.reserve((c,), 0.3) for _ in range(4)]
    assert [isinstance(h, Reservation) for h in held] == [True, True, True, False]
    ledger.settle(held[0], 0.05)  # type: ignore[arg-type]
    assert ledger.window_total(c) == pytest.approx((0.05, 0.6))
    assert isinstance(ledger.reserve((c,), 0.3), Reservation)


def test_exhausted_budget_refuses_even_zero_amount() -> None:
    ledger = BudgetLedger()
    c = charge(limit=1.0)
    ledger.add_spent(c.counter, c.bucket, 1.0)
    assert isinstance(ledger.reserve((c,), 0.0), Refusal)


def test_alert_charges_are_booked_never_refused() -> None:
    ledger = BudgetLedger()
    c = charge(limit=0.1, enforce=False)
    reservation = ledger.reserve((c,), 5.0)
    assert isinstance(reservation, Reservation)
    ledger.settle(reservation, 5.0)
    assert ledger.window_total(c) == (5.0, 0.0)


def test_rolling_window_sums_its_buckets_only() -> None:
    ledger = BudgetLedger()
    for bucket in (100, 130, 159, 160):
        ledger.add_spent("b|a", bucket, 1.0)
    assert ledger.window_total(charge(bucket=160, span=60))[0] == 3.0  # 101..160
    assert ledger.window_total(charge(bucket=159, span=60))[0] == 3.0  # 100..159


def test_dirty_counters_and_load_and_prune() -> None:
    ledger = BudgetLedger()
    ledger.add_spent("b|a", 1, 0.5)
    ledger.add_spent("b|a", 1, 0.25)
    assert ledger.take_dirty() == [("b|a", 1, 0.75)]
    assert ledger.take_dirty() == []
    other = BudgetLedger()
    other.load("b|a", 1, 0.75)
    assert other.spent("b|a", 1) == 0.75
    other.prune({"b": 2})
    assert other.buckets("b|a") == []


def test_window_positions() -> None:
    jan31 = 1738281600.0 + 3600  # 2025-01-31T01:00Z
    day = position("day", jan31)
    assert day.span == 1 and day.ends_in == 23 * 3600
    month = position("month", jan31)
    assert month.bucket == 2025 * 12 and month.ends_in == 23 * 3600
    assert position("month", jan31 + 86400).bucket == 2025 * 12 + 1
    hour = position("1h", 125.0)
    assert (hour.bucket, hour.span, hour.ends_in, hour.horizon) == (2, 60, 55.0, 3600.0)
    assert position("24h", 0.0).span == 96
    assert position("per_task", 5.0).ends_in == float("inf")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 0.5), st.floats(0, 1)), min_size=1, max_size=60)
)
def test_enforced_budget_never_overspends(ops) -> None:
    """Whatever interleaving of reserves and settles (actual <= reserved), spent + reserved
    stays within the limit."""
    ledger = BudgetLedger()
    c = charge(limit=1.0)
    held: list[Reservation] = []
    for reserve, amount, share in ops:
        if reserve or not held:
            outcome = ledger.reserve((c,), amount)
            if isinstance(outcome, Reservation):
                held.append(outcome)
        else:
            reservation = held.pop(0)
            ledger.settle(reservation, reservation.amount_usd * share)
        spent, reserved = ledger.window_total(c)
        assert spent + reserved <= 1.0 + 1e-9
