"""Checks from plain samples: wait on small samples, thresholds, relative change gated by
significance, and the verdict of a whole analysis."""

from __future__ import annotations

import json

import pytest

from agent_sre.delivery.analysis import Observation, Samples, analyse
from agent_sre.delivery.spec import AnalysisSpec


def samples(n: int, **values: object) -> Samples:
    out = Samples()
    for i in range(n):
        fields = {k: (v(i) if callable(v) else v) for k, v in values.items()}
        out.add(Observation(**{"success": True, "latency": 0.1, **fields}))  # type: ignore[arg-type]
    return out


def spec(*checks: dict[str, object], min_samples: int = 20) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"min_samples": min_samples, "checks": list(checks)})


LATENCY = {"metric": "latency_p95", "max_relative_change": 0.2}


def test_small_samples_wait() -> None:
    result = analyse(spec(LATENCY), samples(50), samples(19, latency=9.0))
    assert result.verdict == "wait"
    assert result.checks[0].reason == "fewer than 20 samples per variant"


def test_a_slower_canary_fails_with_its_figures() -> None:
    base = samples(40, latency=lambda i: 0.1 + i / 1000)
    slow = samples(40, latency=lambda i: 0.2 + i / 1000)
    [check] = analyse(spec(LATENCY), base, slow).checks
    assert check.verdict == "fail"
    assert check.relative_change is not None and check.relative_change > 0.5
    assert check.p_value is not None and check.p_value < 0.01
    assert "worse than baseline" in check.reason


def test_a_faster_or_equal_canary_passes() -> None:
    base = samples(40, latency=lambda i: 0.1 + i / 1000)
    assert analyse(spec(LATENCY), base, samples(40, latency=0.05)).verdict == "pass"
    assert analyse(spec(LATENCY), base, base).verdict == "pass"


def test_a_large_change_on_noise_is_not_significant() -> None:
    # 25 calls, 2 slow outliers on the canary: p95 jumps, the ranks barely move
    base = samples(25, latency=lambda i: 0.1 + (i % 5) / 100)
    noisy = samples(25, latency=lambda i: 1.0 if i >= 23 else 0.1 + (i % 5) / 100)
    [check] = analyse(spec(LATENCY), base, noisy).checks
    assert check.relative_change is not None and check.relative_change > 0.2
    assert check.verdict == "pass"


def test_threshold_on_the_canary_alone() -> None:
    check = {"metric": "success_ratio", "threshold": 0.95}
    flaky = samples(40, success=lambda i: i % 10 != 0)  # 90%
    result = analyse(spec(check), Samples(), flaky)  # no baseline needed for a threshold
    assert result.verdict == "fail"
    assert "below the threshold 0.95" in result.checks[0].reason


def test_cost_per_task_sums_each_tasks_calls() -> None:
    check = {"metric": "cost_per_task", "max_relative_change": 0.1}
    base = samples(40, cost=0.01, task=lambda i: f"t{i % 20}")  # 20 tasks of 2 calls
    dear = samples(40, cost=0.01, task=lambda i: f"t{i % 10}")  # 10 tasks of 4 calls
    result = analyse(spec(check, min_samples=10), base, dear)
    assert result.checks[0].baseline == 0.02
    assert result.checks[0].canary == 0.04
    assert result.verdict == "fail"


def test_ttft_and_tokens() -> None:
    checks = [
        {"metric": "ttft_p95", "threshold": 0.5},
        {"metric": "tokens_per_call", "max_relative_change": 0.5},
    ]
    base = samples(30, ttft=0.1, tokens=100)
    assert analyse(spec(*checks), base, samples(30, ttft=0.2, tokens=120)).verdict == "pass"
    no_ttft = analyse(spec(*checks), base, samples(30, tokens=100))
    assert no_ttft.checks[0].verdict == "wait"  # not streamed: no time to first token
    worse = analyse(spec(*checks), base, samples(30, ttft=0.9, tokens=100))
    assert worse.verdict == "fail"


def test_any_failure_fails_any_wait_waits() -> None:
    checks = [LATENCY, {"metric": "ttft_p95", "threshold": 1.0}]
    base = samples(30)
    assert analyse(spec(*checks), base, samples(30, latency=5.0)).verdict == "fail"
    assert analyse(spec(*checks), base, samples(30)).verdict == "wait"


def test_samples_survive_their_record_and_a_bad_one_is_refused() -> None:
    kept = samples(30, latency=lambda i: i / 10, cost=0.002, tokens=12, task=lambda i: f"t{i % 7}")
    kept.add(Observation(success=False, latency=1.5, ttft=0.25))
    record = json.loads(json.dumps(kept.to_dict()))  # as the state file holds it
    back = Samples.from_dict(record)
    assert back.calls == 31
    for metric in ("success_ratio", "latency_p95", "ttft_p95", "cost_per_call", "cost_per_task"):
        assert list(back.values(metric)) == list(kept.values(metric)), metric
    assert list(Samples.from_dict(record, max_samples=10).latency) == list(kept.latency)[-10:]
    for broken in ({**record, "latency": "!!"}, {**record, "cost": "AAAA"}, {"calls": 1}):
        with pytest.raises((KeyError, TypeError, ValueError)):
            Samples.from_dict(broken)
