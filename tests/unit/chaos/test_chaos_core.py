"""The chaos core over plain values: targeting, fault choice, shapes, abort rules, the
steady state, windows, run results and the resilience score."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

from agent_sre.chaos import shapes
from agent_sre.chaos.abort import Readings, SLOReading, first_tripped, steady_state_problems
from agent_sre.chaos.recent import RecentCalls
from agent_sre.chaos.results import Run
from agent_sre.chaos.spec import AbortRule, FaultSpec, SteadyStateSpec, TargetSpec, WindowSpec
from agent_sre.chaos.targeting import CallFacts, chosen, matches, may_match, pick_fault
from agent_sre.chaos.windows import in_window

CALL = CallFacts(route="openai", api="openai", agent_id="a1", agent_version="v2",
                 model="gpt-4o-mini", stream=False)  # fmt: skip


def test_targets_match_every_listed_key_and_model_prefixes() -> None:
    assert matches(TargetSpec(), CALL)
    assert matches(TargetSpec(routes=["openai"], agents=["a1"], models=["gpt-4o*"]), CALL)
    assert not matches(TargetSpec(routes=["anthropic"]), CALL)
    assert not matches(TargetSpec(agents=["a2"]), CALL)
    assert not matches(TargetSpec(agent_versions=["v1"]), CALL)
    assert not matches(TargetSpec(tools=["search"]), CALL)
    assert not matches(TargetSpec(models=["gpt-4o"]), CALL)


def test_share_and_probability_hold_statistically() -> None:
    draw = random.Random(7).random
    n = 20_000
    picked = sum(chosen(0.3, draw) for _ in range(n))
    # binomial sd = sqrt(n p q) ~ 65; tolerance 5 sd
    assert abs(picked - 0.3 * n) < 5 * 65
    faults = [FaultSpec(type="error", probability=0.1), FaultSpec(type="latency", probability=0.5)]
    kinds = [pick_fault(faults, CALL, draw) for _ in range(n)]
    errors = sum(1 for f in kinds if f is not None and f.type == "error")
    latency = sum(1 for f in kinds if f is not None and f.type == "latency")
    # error: p=0.1 (sd ~42); latency only when error missed: 0.9 * 0.5 = 0.45 (sd ~70)
    assert abs(errors - 0.1 * n) < 5 * 42
    assert abs(latency - 0.45 * n) < 5 * 70
    assert chosen(0.0, draw) is False and chosen(1.0, lambda: 0.999) is True


def test_faults_only_apply_where_they_can_be_shaped() -> None:
    stream_only = [FaultSpec(type="truncated_stream"), FaultSpec(type="tool_error")]
    assert pick_fault(stream_only, CALL, lambda: 0.0) is None
    streamed = CallFacts(route="openai", api="openai", stream=True)
    assert pick_fault(stream_only, streamed, lambda: 0.0) == stream_only[0]
    tool = CallFacts(route="search", api="tool")
    assert pick_fault(stream_only, tool, lambda: 0.0) == stream_only[1]
    assert pick_fault([FaultSpec(type="token_inflation")], tool, lambda: 0.0) is None


def test_error_shapes_follow_each_provider() -> None:
    assert shapes.error_kind("anthropic", 529) == ("overloaded_error", "Overloaded")
    assert shapes.error_kind("openai", 429)[0] == "rate_limit_exceeded"
    assert shapes.error_kind("openai", 503, "custom") == ("server_error", "custom")
    assert shapes.error_kind("openai", 418)[0] == "invalid_request_error"
    headers = shapes.rate_limit_headers("anthropic", 1.5, 1_700_000_000.0)
    assert headers["anthropic-ratelimit-requests-reset"] == "2023-11-14T22:13:22Z"
    assert shapes.rate_limit_headers("openai", 2, 0)["x-ratelimit-reset-requests"] == "2s"
    assert shapes.rate_limit_headers("tool", 2, 0) == {}


def test_body_rewrites() -> None:
    body = json.dumps({"usage": {"prompt_tokens": 3, "completion_tokens": 5}}).encode()
    assert json.loads(shapes.inflate_usage(body, 10))["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 50,
    }
    with pytest.raises(ValueError):
        json.loads(shapes.malformed(body))
    assert shapes.malformed(b"") == b"{"
    result = json.dumps({"content": [{"text": "hi", "type": "text"}]}).encode()
    assert json.loads(shapes.drift(result, "content.0.text", "body")) == {
        "content": [{"type": "text", "body": "hi"}]
    }
    assert json.loads(shapes.drift(result, "content.0.text", "")) == {"content": [{"type": "text"}]}
    assert shapes.drift(result, "content.5.text", "x") == result
    assert shapes.drift(b"not json", "a", "b") == b"not json"


def slo(burn: float, remaining: float, status: str = "HEALTHY") -> SLOReading:
    return SLOReading(burn_rates={300.0: burn, 3600.0: burn / 2}, budget_remaining=remaining,
                      status=status)  # fmt: skip


def test_abort_rules_trip_on_plain_readings() -> None:
    rules = [
        AbortRule(slo="llm", burn_rate_above=14.4),
        AbortRule(slo="llm", budget_remaining_below=0.5),
        AbortRule(error_ratio_above=0.5, min_calls=10),
        AbortRule(spend_above_usd=1.0),
    ]
    calm = Readings(slos={"llm": slo(1.0, 0.9)}, calls=9, errors=9, spend_usd=0.5)
    assert first_tripped(rules, calm) is None  # 9 calls: below min_calls
    burning = Readings(slos={"llm": slo(20.0, 0.9)})
    tripped = first_tripped(rules, burning)
    assert tripped is not None and tripped.reason == "slo_burn_rate" and tripped.value == 20.0
    assert first_tripped(rules[1:], Readings(slos={"llm": slo(1, 0.4)})).reason == "slo_budget"  # type: ignore[union-attr]
    failing = Readings(calls=10, errors=6)
    assert first_tripped(rules, failing).reason == "error_ratio"  # type: ignore[union-attr]
    assert first_tripped(rules, Readings(spend_usd=1.01)).reason == "spend"  # type: ignore[union-attr]
    # the 1h window is read when asked for; an unknown SLO never trips
    hourly = AbortRule(slo="llm", burn_rate_above=14.4, window=3600)
    assert first_tripped([hourly], burning) is None
    assert first_tripped([AbortRule(slo="x", burn_rate_above=1)], burning) is None


def test_steady_state() -> None:
    steady = SteadyStateSpec(slos_healthy=["llm", "tools"], max_error_ratio=0.1, min_calls=10)
    problems = steady_state_problems(steady, {"llm": slo(1, 1, "CRITICAL")}, 20, 5)
    assert problems == [
        "SLO llm is CRITICAL, not HEALTHY",
        "SLO tools is not defined",
        "targeted calls failed 25.0% recently, above 10.0%",
    ]
    assert steady_state_problems(steady, {"llm": slo(1, 1), "tools": slo(1, 1)}, 5, 5) == []


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_weekly_windows_in_utc() -> None:
    office = WindowSpec(days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="17:00")
    assert in_window(office, at("2026-11-23T09:00:00"))  # a Monday
    assert not in_window(office, at("2026-11-23T17:00:00"))
    assert not in_window(office, at("2026-11-22T12:00:00"))  # a Sunday
    night = WindowSpec(days=["fri"], start="22:00", end="02:00")
    assert in_window(night, at("2026-11-27T23:00:00"))  # Friday evening
    assert in_window(night, at("2026-11-28T01:00:00"))  # into Saturday
    assert not in_window(night, at("2026-11-29T01:00:00"))
    assert in_window(WindowSpec(), at("2026-11-29T23:59:00"))


def test_recent_calls_forget_old_buckets() -> None:
    recent = RecentCalls(60)
    recent.add(1000.0, True, 0.01)
    recent.add(1005.0, False, None)
    assert (recent.total(1010.0).calls, recent.total(1010.0).errors) == (2, 1)
    assert recent.total(1075.0).calls == 0


def test_a_run_counts_phases_and_scores_recovery() -> None:
    run = Run(id="r", experiment="e", started_at=0.0, duration=60, observe_after=60)
    run.before.add(True, None)
    for ok, faulted in ((False, True), (True, False), (False, True), (True, False)):
        run.observe(10.0, ok, faulted, 0.001)
        if faulted:
            run.injected("error")
    assert run.score is None  # faults still running
    run.stop_faults(60.0)
    assert run.state == "observing" and not run.ended
    run.observe(61.0, False, False, None)
    run.observe(66.0, True, False, None)  # a new 5s bucket, all good: recovered
    assert run.time_to_recover == 6.0
    run.finish(120.0)
    data = run.to_dict()
    assert data["state"] == "completed" and data["faults_injected"] == {"error": 2}
    assert data["sli"]["during"] == {"calls": 4, "errors": 2, "sli": 0.5, "spend_usd": 0.004}
    assert data["sli"]["during_unfaulted"]["sli"] == 1.0
    assert data["sli"]["after"]["sli"] == 0.5
    # D = 1, A = 0.5, R = 1 - 6/60 = 0.9
    assert data["resilience_score"] == round(100 * (0.4 + 0.3 * 0.5 + 0.3 * 0.9), 1)
    assert Run.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_an_aborted_run_scores_half_and_an_interrupted_one_says_why() -> None:
    run = Run(id="r", experiment="e", started_at=0.0, duration=60, observe_after=0)
    run.stop_faults(5.0, "aborted", "error_ratio", "too many")
    assert run.state == "aborted" and run.ended and run.score == 50.0
    other = Run(id="s", experiment="e", started_at=0.0, duration=60, observe_after=30)
    other.interrupt(3.0)
    assert other.state == "interrupted" and other.reason == "restart"
    assert other.faults_stopped_at == 3.0


@pytest.mark.parametrize(
    "target",
    [
        TargetSpec(),
        TargetSpec(routes=["openai"]),
        TargetSpec(routes=["anthropic"]),
        TargetSpec(routes=["open*"], agents=["a*"]),
        TargetSpec(agents=["someone-else"]),
        TargetSpec(routes=["openai"], agents=["a1"], models=["claude*"]),
    ],
)
def test_the_quick_check_never_rules_out_a_call_the_targets_match(target: TargetSpec) -> None:
    """The stage skips building a call's facts when route and agent alone rule it out."""
    for call in (CALL, CallFacts(route="anthropic", agent_id=""), CallFacts(route="openai")):
        if matches(target, call):
            assert may_match(target, call.route, call.agent_id)
        if not may_match(target, call.route, call.agent_id):
            assert not matches(target, call)
