"""Progressive delivery's own cost: what a call pays in the rollout stage's core (sticky
assignment, observation) and what one analysis of a full step costs, each against a
baseline run alongside. Figures are printed, never asserted.

    .venv/bin/python bench/delivery.py [--samples 10000] [--calls 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from agent_sre.delivery.analysis import Observation, Samples, analyse
from agent_sre.delivery.assign import variant
from agent_sre.delivery.spec import AnalysisSpec

BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
).encode()
CHECKS = [
    {"metric": m, "max_relative_change": 0.1}
    for m in ("success_ratio", "latency_p95", "ttft_p95", "cost_per_call", "tokens_per_call")
] + [{"metric": "cost_per_task", "max_relative_change": 0.1}]


def per_call(calls: int) -> None:
    keys = [f"task-{i}" for i in range(calls)]
    started = time.perf_counter()
    for _ in keys:
        data = json.loads(BODY)  # baseline: reading a request body once, as the proxy does
        data["model"] = "gpt-4.1"
        json.dumps(data)
    baseline = (time.perf_counter() - started) / calls
    samples = Samples()
    seen = Observation(True, 0.2, 0.05, 0.001, 120, "t")
    started = time.perf_counter()
    for key in keys:
        variant("bench", key, 25.0)
        samples.add(seen)
    ours = (time.perf_counter() - started) / calls
    print(f"per call: assignment + observation {ours * 1e6:.2f} us; "
          f"baseline (model rewrite of one body) {baseline * 1e6:.2f} us; "
          f"ratio {ours / baseline:.2f}x")  # fmt: skip


def per_analysis(n: int) -> None:
    rng = random.Random(7)
    base, canary = Samples(n), Samples(n)
    for which, slow in ((base, 1.0), (canary, 1.05)):
        for i in range(n):
            which.add(
                Observation(
                    rng.random() > 0.01,
                    rng.lognormvariate(-1.5, 0.5) * slow,
                    rng.lognormvariate(-3, 0.3),
                    rng.uniform(0.001, 0.003),
                    rng.randint(50, 400),
                    f"t{i // 4}",
                )
            )
    spec = AnalysisSpec.model_validate({"min_samples": 50, "checks": CHECKS})
    started = time.perf_counter()
    result = analyse(spec, base, canary)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for metric in ("latency_p95", "ttft_p95", "cost_per_call", "tokens_per_call", "success_ratio"):
        sorted([*base.values(metric), *canary.values(metric)])  # baseline: one sort a check
    baseline = time.perf_counter() - started
    print(f"one analysis, 6 checks, {n:,} calls a variant: {ours * 1e3:.1f} ms "
          f"(verdict {result.verdict}); baseline (sorting the pooled values of each check) "
          f"{baseline * 1e3:.1f} ms; ratio {ours / baseline:.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    per_call(args.calls)
    per_analysis(args.samples)


if __name__ == "__main__":
    main()
