"""A rollout step that requires a certification tier: held with the missing criteria named
until the candidate holds it; an operator's promote is refused the same way."""

from __future__ import annotations

import pytest

from agent_sre.delivery.rollout import PROGRESSING, CertificationRequiredError, Rollout
from agent_sre.delivery.spec import RolloutSpec

SPEC = RolloutSpec.model_validate(
    {
        "name": "planner-2",
        "route": "llm",
        "vary": "agent_version",
        "agent": "planner",
        "baseline": "1.0",
        "candidate": "2.0",
        "steps": [
            {"weight": 10, "pause": True},
            {"weight": 50, "pause": True, "require_tier": "silver"},
        ],  # fmt: skip
    }
)


class Gate:
    def __init__(self) -> None:
        self.missing = ["silver: 1 chaos run(s) passed ... (none found)"]
        self.asked: list[tuple[str, str, str]] = []

    def __call__(self, tier: str, agent: str, version: str) -> list[str]:
        self.asked.append((tier, agent, version))
        return list(self.missing)


def test_promote_is_refused_with_the_missing_criteria_then_allowed() -> None:
    rollout = Rollout(SPEC, 0.0)
    gate = Gate()
    rollout.gate = gate
    with pytest.raises(CertificationRequiredError) as refused:
        rollout.promote(10.0)
    assert "requires certification tier silver for planner 2.0" in str(refused.value)
    assert "chaos run" in str(refused.value)
    assert gate.asked == [("silver", "planner", "2.0")]
    assert rollout.state.step == 0
    gate.missing = []
    (event,) = rollout.promote(20.0)
    assert event.kind == "step" and rollout.state.step == 1


def test_a_passed_step_waits_for_the_tier_and_says_why_once() -> None:
    spec = SPEC.model_copy(
        update={
            "steps": [
                SPEC.steps[0].model_copy(update={"pause": False, "duration": 5.0}),
                SPEC.steps[1],
            ]
        }  # fmt: skip
    )
    rollout = Rollout(spec, 0.0)
    gate = Gate()
    rollout.gate = gate
    rollout._next(10.0, "passed")  # as evaluate does when the step's analysis passed
    assert rollout.state.phase == PROGRESSING and rollout.state.step == 0
    assert rollout.state.held["tier"] == "silver"
    assert rollout.state.held["missing"] == gate.missing
    assert "waits for certification tier silver" in rollout.state.reason
    assert rollout.state.events[-1].kind == "held"
    assert rollout._next(20.0, "passed") == []  # unchanged: no second event
    assert rollout.to_dict()["held"]["step"] == 2
    gate.missing = []
    (event,) = rollout._next(30.0, "passed")
    assert event.kind == "step" and rollout.state.held == {}


def test_without_a_certification_engine_the_step_waits() -> None:
    rollout = Rollout(SPEC, 0.0)
    with pytest.raises(CertificationRequiredError, match="no certification engine"):
        rollout.promote(1.0)
