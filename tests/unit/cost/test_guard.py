from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from agent_sre.cost.anomaly import SpendAnomalyDetector
from agent_sre.cost.budgets import CallIdentity, charges_for
from agent_sre.cost.guard import CostGuard
from agent_sre.cost.ledger import BudgetLedger, Refusal
from agent_sre.cost.pacing import SpendPacer
from agent_sre.cost.ratelimit import RateLimiter, TokenBucket
from agent_sre.cost.spec import AnomalySpec, BudgetsConfig, BudgetSpec, RateLimitSpec
from agent_sre.cost.windows import position

NOW = 1_760_000_000.0


def spec(**kw) -> BudgetSpec:
    return BudgetSpec.model_validate({"name": "b", "scope": "agent", "limit_usd": 1.0, **kw})


def test_charges_for_each_scope() -> None:
    who = CallIdentity("a1", "t1", "red")
    specs = [spec(name=s, scope=s) for s in ("task", "agent", "team", "node", "global")]
    subjects = {c.budget: c.subject for c in charges_for(specs, who, "n1", NOW)}
    assert subjects == {"task": "t1", "agent": "a1", "team": "red", "node": "n1", "global": "*"}
    anonymous = charges_for(specs, CallIdentity(), "n1", NOW)
    assert {c.budget: c.subject for c in anonymous} == {
        "agent": "unknown",
        "node": "n1",
        "global": "*",
    }


def test_charges_filtered_by_agents_and_teams() -> None:
    specs = [spec(name="only-a", agents=["a"]), spec(name="only-red", teams=["red"])]
    assert [c.budget for c in charges_for(specs, CallIdentity("a"), "n", NOW)] == ["only-a"]
    assert [c.budget for c in charges_for(specs, CallIdentity("b", team="red"), "n", NOW)] == [
        "only-red"
    ]


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="between 0 and 1"):
        spec(soft_thresholds=[1.5])
    with pytest.raises(ValidationError, match="per_task needs scope task"):
        spec(window="per_task")
    with pytest.raises(ValidationError, match="unique"):
        BudgetsConfig(budgets=[spec(), spec()])
    with pytest.raises(ValidationError):
        BudgetsConfig.model_validate({"budgets": [], "typo": 1})
    with pytest.raises(ValidationError):
        spec(limit_usd=0)


def test_guard_blocked_and_rate_limited() -> None:
    guard = CostGuard(
        BudgetsConfig(rate_limits=[RateLimitSpec(requests_per_minute=60, burst_seconds=2)]), "n"
    )
    guard.blocked["x"] = "r"
    denial = guard.admit(CallIdentity("x"), 0, NOW)
    assert denial is not None and denial.kind == "agent_blocked"
    assert guard.admit(CallIdentity("a"), 0, NOW) is None
    assert guard.admit(CallIdentity("a"), 0, NOW) is None
    third = guard.admit(CallIdentity("a"), 0, NOW)
    assert third is not None and third.kind == "agent_throttled"
    assert third.retry_after == pytest.approx(1.0)
    assert guard.admit(CallIdentity("a"), 0, NOW + 1.0) is None


def test_team_from_config_mapping() -> None:
    guard = CostGuard(BudgetsConfig(agent_teams={"a": "red"}), "n")
    assert guard.identity(CallIdentity("a")).team == "red"
    assert guard.identity(CallIdentity("a", team="blue")).team == "blue"


def test_refusal_answer_follows_action() -> None:
    config = BudgetsConfig(
        budgets=[spec(name="blk"), spec(name="thr", action="throttle", window="1h")]
    )
    guard = CostGuard(config, "n")
    charges = guard.charges(CallIdentity("a"), NOW)
    ledger = BudgetLedger()
    blk = guard.refused(Refusal(charges[0], 1.0, 0.0), 0.5, NOW)
    assert blk.kind == "budget_exceeded" and blk.retry_after is None and blk.budget == "blk"
    thr = guard.refused(Refusal(charges[1], 1.0, 0.0), 0.5, NOW)
    assert thr.kind == "agent_throttled" and 0 < (thr.retry_after or 0) <= 60
    del ledger


def test_threshold_signals_fire_once_per_window() -> None:
    guard = CostGuard(BudgetsConfig(budgets=[spec(soft_thresholds=[0.5, 0.8])]), "n")
    who = CallIdentity("a")
    charge = guard.charges(who, NOW)[0]
    kinds = [s.type for s in guard.settled(who, 0.6, [(charge, 0.6)], NOW)]
    assert kinds == ["budget_threshold"]
    kinds = [s.type for s in guard.settled(who, 0.5, [(charge, 1.1)], NOW)]
    assert kinds == ["budget_threshold", "budget_exhausted"]
    assert guard.settled(who, 0.1, [(charge, 1.2)], NOW) == []


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1.0, capacity=2.0)
    assert bucket.wait_for(1, 0.0) == 0
    bucket.take(2, 0.0)
    assert bucket.wait_for(1, 0.0) == pytest.approx(1.0)
    assert bucket.wait_for(1, 0.5) == pytest.approx(0.5)
    assert bucket.wait_for(10, 2.0) == 0  # asks beyond capacity wait for a full bucket only


def test_token_rate_limit() -> None:
    limiter = RateLimiter([RateLimitSpec(tokens_per_minute=600, burst_seconds=10)])
    assert limiter.check("a", 100, 0.0) == 0
    assert limiter.check("a", 100, 0.0) == pytest.approx(10.0)
    assert limiter.check("b", 100, 0.0) == 0


def test_pacer_waits_only_for_a_sustained_pace() -> None:
    pacer = SpendPacer(tau=300)
    pacer.settled("a", 1.0, 0.0)
    # remaining 100 over an hour: sustainable 0.028/s; rate 1/300 = 0.0033/s: fine
    assert pacer.wait_for("a", 100.0, 3600.0, 1.0) == 0
    # remaining 5 over an hour: sustainable 0.0014/s, rate 0.0033/s: wait
    wait = pacer.wait_for("a", 5.0, 3600.0, 1.0)
    assert wait > 0
    assert pacer.wait_for("a", 5.0, 3600.0, 1.0 + wait + 0.01) == 0
    assert pacer.wait_for("a", 5.0, float("inf"), 1.0) == 0
    assert pacer.wait_for("a", 0.0, 3600.0, 1.0) == 0


def test_anomaly_detector_flags_a_spike_once() -> None:
    detector = SpendAnomalyDetector(
        AnomalySpec(interval_seconds=60, min_usd=0.01, warmup_intervals=3)
    )
    for minute in range(10):
        assert detector.observe("a", 0.01, minute * 60.0) is None
    spike = detector.observe("a", 1.0, 10 * 60.0)
    assert spike is not None and spike.agent_id == "a" and spike.sigma > 4
    assert detector.observe("a", 1.0, 10 * 60.0 + 1) is None  # once per interval
    assert SpendAnomalyDetector(AnomalySpec(enabled=False)).observe("a", 9.0, 0.0) is None


def test_anomaly_needs_warmup_and_minimum() -> None:
    detector = SpendAnomalyDetector(AnomalySpec(min_usd=0.5))
    assert detector.observe("a", 0.4, 0.0) is None
    for minute in range(1, 6):
        assert detector.observe("a", 0.001, minute * 60.0) is None
    assert detector.observe("a", 0.4, 6 * 60.0) is None  # below min_usd


def test_forget_before_lets_a_new_window_signal_again() -> None:
    guard = CostGuard(BudgetsConfig(budgets=[spec(window="day", soft_thresholds=[0.5])]), "n")
    who = CallIdentity("a")
    charge = guard.charges(who, NOW)[0]
    assert len(guard.settled(who, 0.6, [(charge, 0.6)], NOW)) == 1
    guard.forget_before({"b": charge.bucket + 1})
    assert len(guard.settled(who, 0.6, [(charge, 0.6)], NOW)) == 1


def test_pace_applies_once_enough_of_the_budget_is_used() -> None:
    config = BudgetsConfig(
        budgets=[spec(window="1h", limit_usd=1.0)], auto_throttle=True, auto_throttle_after=0.5
    )
    guard = CostGuard(config, "n")
    who = CallIdentity("a")
    charge = guard.charges(who, NOW)[0]
    guard.settled(who, 0.3, [(charge, 0.3)], NOW)  # $0.3 in one go: a fast pace
    assert guard.pace(who, [(charge, 0.3)], NOW) is None  # 30% used: bursts are fine
    denial = guard.pace(who, [(charge, 0.6)], NOW)
    assert denial is not None and denial.kind == "agent_throttled" and denial.retry_after
    off = CostGuard(config.model_copy(update={"auto_throttle": False}), "n")
    off.settled(who, 0.3, [(charge, 0.3)], NOW)
    assert off.pace(who, [(charge, 0.6)], NOW) is None


def test_pacing_is_off_by_default_and_its_wait_follows_the_spend_rate() -> None:
    """Off unless asked for; when on, the wait is ``tau * ln(rate / sustainable)``: the spend
    rate (decayed spend / tau) against the room left over the time left in the window."""
    assert BudgetsConfig().auto_throttle is False
    config = BudgetsConfig(
        budgets=[spec(window="1h", limit_usd=1.0)],
        auto_throttle=True,
        auto_throttle_after=0.0,
        auto_throttle_tau_seconds=300.0,
    )
    guard = CostGuard(config, "n")
    who = CallIdentity("a")
    charge = guard.charges(who, NOW)[0]
    guard.settled(who, 0.3, [(charge, 0.3)], NOW)
    denial = guard.pace(who, [(charge, 0.6)], NOW)
    assert denial is not None and denial.retry_after is not None
    rate = 0.3 / 300.0
    horizon = position("1h", NOW).horizon
    sustainable = (1.0 - 0.6) / horizon
    assert denial.retry_after == pytest.approx(300.0 * math.log(rate / sustainable))
    # later, the decayed rate is sustainable and the same room admits the call
    assert guard.pace(who, [(charge, 0.6)], NOW + denial.retry_after + 1.0) is None


def test_a_delegation_is_refused_once_a_budget_of_the_caller_is_spent() -> None:
    """A hand-off spends nothing itself; it is refused when an enforced budget covering the
    caller has nothing left (the callee would spend on the caller's behalf)."""
    config = BudgetsConfig(
        budgets=[spec(name="daily", limit_usd=1.0), spec(name="watch", action="alert")]
    )
    guard = CostGuard(config, "n")
    charges = guard.charges(CallIdentity("a"), NOW)
    assert guard.spent(zip(charges, [0.5, 5.0], strict=True)) is None  # alert budgets never refuse
    denial = guard.spent(zip(charges, [1.0, 0.0], strict=True))
    assert denial is not None and denial.kind == "budget_exceeded"
    assert "no work is handed on" in denial.message and denial.budget == "daily"
