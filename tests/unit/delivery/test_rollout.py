"""Decisions from plain values and times: steps, pauses, operator actions, rollback, and
the state that survives a restart."""

from __future__ import annotations

import pytest

from agent_sre.delivery.analysis import Observation
from agent_sre.delivery.assign import BUCKETS, bucket, variant
from agent_sre.delivery.rollout import Rollout, RolloutConflictError, RolloutState
from agent_sre.delivery.spec import RolloutSpec

T0 = 1_700_000_000.0


def make(**overrides: object) -> Rollout:
    data: dict[str, object] = {
        "name": "r",
        "route": "openai",
        "candidate": "gpt-4.1",
        "steps": [{"weight": 10, "duration": "5m"}, {"weight": 50, "pause": True}],
        "analysis": {
            "min_samples": 5,
            "checks": [{"metric": "success_ratio", "max_relative_change": 0.05}],
        },
        **overrides,
    }
    return Rollout(RolloutSpec.model_validate(data), T0)


def feed(rollout: Rollout, n: int, baseline_ok: bool = True, candidate_ok: bool = True) -> None:
    for _ in range(n):
        rollout.observe("baseline", Observation(success=baseline_ok, latency=0.1))
        rollout.observe("candidate", Observation(success=candidate_ok, latency=0.1))


def test_a_step_advances_only_when_over_and_passing() -> None:
    r = make()
    assert (r.state.phase, r.state.step, r.state.weight) == ("progressing", 0, 10)
    assert r.evaluate(T0 + 400) == []  # over, but no samples: wait
    feed(r, 5)
    assert r.evaluate(T0 + 100) == []  # passing, not over
    [event] = r.evaluate(T0 + 400)
    assert (event.kind, r.state.step, r.state.weight) == ("step", 1, 50)
    assert (r.state.phase, r.state.paused_by) == ("paused", "step")
    assert r.samples["candidate"].calls == 0  # each step judges its own calls
    with pytest.raises(RolloutConflictError, match="awaits promotion"):
        r.resume(T0 + 500)
    [event] = r.promote(T0 + 500)
    assert (event.kind, r.state.phase, r.state.weight) == ("promoted", "promoted", 100)
    assert r.variant_of("anything") == "candidate"
    with pytest.raises(RolloutConflictError):
        r.promote(T0 + 600)


def test_a_failing_canary_rolls_back_even_while_paused() -> None:
    r = make()
    r.pause(T0 + 1)
    feed(r, 5, candidate_ok=False)
    [event] = r.evaluate(T0 + 2)
    assert event.kind == "rolled_back"
    assert (r.state.phase, r.state.weight) == ("rolled_back", 0)
    assert r.variant_of("anything") == "baseline"
    feed(r, 5)  # no longer observed
    assert r.samples["candidate"].calls == 5


def test_operator_pause_resume_abort() -> None:
    r = make()
    r.pause(T0 + 1)
    feed(r, 5)
    assert r.evaluate(T0 + 1000) == []  # paused: the step does not advance
    r.resume(T0 + 1001)
    with pytest.raises(RolloutConflictError, match="not paused"):
        r.resume(T0 + 1002)
    [event] = r.abort(T0 + 1003, by="alice")
    assert (event.kind, r.state.phase, r.state.reason) == ("aborted", "aborted", "aborted by alice")
    for operation in (r.pause, r.abort, r.promote):
        with pytest.raises(RolloutConflictError):
            operation(T0 + 1004)
    with pytest.raises(RolloutConflictError):
        r.rollback(T0 + 1004, "x")
    assert [e.kind for e in r.state.events] == ["started", "paused", "resumed", "aborted"]


def test_state_survives_as_plain_data() -> None:
    r = make()
    feed(r, 5)
    r.evaluate(T0 + 400)
    again = Rollout(r.spec, T0 + 500, RolloutState.from_dict(r.state.to_dict()))
    assert again.state == r.state
    with pytest.raises(ValueError, match="unknown phase"):
        RolloutState.from_dict({**r.state.to_dict(), "phase": "dancing"})
    with pytest.raises(KeyError):
        RolloutState.from_dict({})
    # a state whose step no longer exists starts over
    fewer = RolloutState.from_dict({**r.state.to_dict(), "step": 7})
    assert Rollout(r.spec, T0, fewer).state.step == 0


def test_assignment_is_sticky_and_grows_with_the_weight() -> None:
    keys = [f"task-{i}" for i in range(2000)]
    at_10 = {k for k in keys if variant("r", k, 10) == "candidate"}
    at_50 = {k for k in keys if variant("r", k, 50) == "candidate"}
    assert at_10 <= at_50  # a task on the candidate stays there as the weight grows
    assert 150 < len(at_10) < 250
    assert 900 < len(at_50) < 1100
    assert variant("r", "x", 0) == "baseline"
    assert variant("r", "x", 100) == "candidate"
    assert 0 <= bucket("r", "x") < BUCKETS
    assert bucket("r", "x") == bucket("r", "x")
    assert bucket("r", "x") != bucket("other", "x") or bucket("r", "y") != bucket("other", "y")
