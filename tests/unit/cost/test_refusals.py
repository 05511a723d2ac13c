from __future__ import annotations

from agent_sre.cost.guard import Denial
from agent_sre.cost.refusals import RefusalDigest
from agent_sre.signals import Severity

DENIAL = Denial("budget_exceeded", "no room", budget="b", rule="b")


def test_one_signal_per_agent_and_rule_per_interval() -> None:
    digest = RefusalDigest(interval=60.0)
    first = digest.refused("a", DENIAL, 100.0)
    assert first is not None
    assert (first.type, first.source, first.severity) == (
        "budget_refused",
        "budgets",
        Severity.WARNING,
    )
    assert (first.at, first.value) == (100.0, 1.0)
    assert digest.refused("a", DENIAL, 130.0) is None
    assert digest.refused("a", DENIAL, 159.0) is None
    other_rule = Denial("agent_throttled", "slow down", rule="rate_limit")
    assert digest.refused("a", other_rule, 131.0) is not None
    assert digest.refused("b", DENIAL, 131.0) is not None
    later = digest.refused("a", DENIAL, 160.0)
    assert later is not None and later.value == 3.0 and "3 calls" in later.message


def test_tracked_pairs_are_bounded() -> None:
    digest = RefusalDigest(interval=60.0, max_tracked=3)
    for index in range(10):
        assert digest.refused(f"agent-{index}", DENIAL, float(index)) is not None
    assert len(digest) <= 3
